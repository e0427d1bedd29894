package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xplore/faceauth/central"
	"github.com/xplore/faceauth/central/fleet"
)

// deletionsEvery bounds how often a scrape re-reads the deletion records
// for faceauth_central_deletions_pending: the alert on receipts pending for
// a day needs no fresher value, and each read lists every deletion.
const deletionsEvery = time.Minute

// edgeStates are the states counted in faceauth_central_edges, each
// exported (0 when no edge is in it) so that a dashboard and an alert see
// the series before the first edge reports.
var edgeStates = []string{fleet.StateInSync, fleet.StateBehind, fleet.StateOffline, fleet.StateModelMismatch}

// opsCollector exports, at scrape time, what an operator alerts on: the
// store's reachability, the edges by state with each one's lag and last
// heartbeat, and the erasures some edge has not confirmed.
type opsCollector struct {
	reg   *central.Registry
	edges EdgeMonitor // nil: no edge or deletion series
	log   *slog.Logger

	storeUp, edgesByState, edgeState, edgeLag, edgeSeen, delPending, delOldest *prometheus.Desc

	mu       sync.Mutex
	delAt    time.Time // when pending/oldest were computed
	delErr   error
	pending  int
	oldestAt time.Time
}

func newOpsCollector(reg *central.Registry, edges EdgeMonitor, log *slog.Logger) *opsCollector {
	return &opsCollector{
		reg: reg, edges: edges, log: log,
		storeUp: prometheus.NewDesc("faceauth_central_store_up",
			"1 when the reference store (S3 or the local folder) answered the scrape's check.", nil, nil),
		edgesByState: prometheus.NewDesc("faceauth_central_edges",
			"Edges by state (in_sync, behind, offline, model_mismatch).", []string{"state"}, nil),
		edgeState: prometheus.NewDesc("faceauth_central_edge_state",
			"Each edge's state: 1 for the one it is in, 0 for the others.", []string{"edge", "state"}, nil),
		edgeLag: prometheus.NewDesc("faceauth_central_edge_lag",
			"Revisions published that the edge had not applied at its last heartbeat.", []string{"edge"}, nil),
		edgeSeen: prometheus.NewDesc("faceauth_central_edge_last_seen_timestamp_seconds",
			"When the edge's last heartbeat arrived (Unix seconds).", []string{"edge"}, nil),
		delPending: prometheus.NewDesc("faceauth_central_deletions_pending",
			"Erased users whose purge some known edge has not confirmed with a receipt.", nil, nil),
		delOldest: prometheus.NewDesc("faceauth_central_deletions_oldest_pending_timestamp_seconds",
			"When the oldest erasure still waiting for a receipt was made (Unix seconds; 0: none waiting).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.storeUp
	if c.edges != nil {
		for _, d := range []*prometheus.Desc{c.edgesByState, c.edgeState, c.edgeLag, c.edgeSeen, c.delPending, c.delOldest} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := 1.0
	if err := c.reg.Ping(ctx); err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.storeUp, prometheus.GaugeValue, up)
	if c.edges == nil {
		return
	}
	now := time.Now()
	counts := map[string]int{}
	for _, e := range c.edges.Edges(now) {
		counts[e.State]++
		for _, st := range edgeStates {
			v := 0.0
			if st == e.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.edgeState, prometheus.GaugeValue, v, e.ID, st)
		}
		ch <- prometheus.MustNewConstMetric(c.edgeLag, prometheus.GaugeValue, float64(e.Lag), e.ID)
		ch <- prometheus.MustNewConstMetric(c.edgeSeen, prometheus.GaugeValue, float64(e.LastSeen.UnixNano())/1e9, e.ID)
	}
	for _, s := range edgeStates {
		ch <- prometheus.MustNewConstMetric(c.edgesByState, prometheus.GaugeValue, float64(counts[s]), s)
	}
	pending, oldest, err := c.deletions(ctx, now)
	if err != nil {
		// Leaving the series out, rather than reporting 0, keeps a store
		// outage from looking like every receipt arrived.
		ch <- prometheus.NewInvalidMetric(c.delPending, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.delPending, prometheus.GaugeValue, float64(pending))
	ts := 0.0
	if !oldest.IsZero() {
		ts = float64(oldest.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(c.delOldest, prometheus.GaugeValue, ts)
}

// deletions returns how many deletions wait for a receipt and when the
// oldest of them was made, re-reading the records at most every
// deletionsEvery.
func (c *opsCollector) deletions(ctx context.Context, now time.Time) (int, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.delAt.IsZero() && now.Sub(c.delAt) < deletionsEvery && c.delErr == nil {
		return c.pending, c.oldestAt, nil
	}
	pending, oldest := 0, time.Time{}
	var after uint64
	for {
		dels, next, err := c.reg.DeletionRecords(ctx, after, central.MaxPageSize)
		if err != nil {
			c.log.Warn("metrics: reading the deletion records", "err", err)
			c.delErr = err
			return 0, time.Time{}, err
		}
		for _, d := range c.edges.Deletions(dels) {
			if len(d.Pending) == 0 {
				continue
			}
			pending++
			if !d.DeletedAt.IsZero() && (oldest.IsZero() || d.DeletedAt.Before(oldest)) {
				oldest = d.DeletedAt
			}
		}
		if next == 0 {
			break
		}
		after = next
	}
	c.delAt, c.delErr, c.pending, c.oldestAt = now, nil, pending, oldest
	return pending, oldest, nil
}

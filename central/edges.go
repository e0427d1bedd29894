package central

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/xplore/faceauth"
	"github.com/xplore/faceauth/central/fleet"
	"github.com/xplore/faceauth/internal/api"
	pb "github.com/xplore/faceauth/proto"
)

// EdgeMonitor reports what central knows about the edges from the change
// feed; *fleet.Monitor implements it.
type EdgeMonitor interface {
	Edges(now time.Time) []fleet.EdgeState
	Deletions(dels []*pb.Deletion) []fleet.DeletionState
	Forget(ctx context.Context, edgeID string) error
}

// EdgesResponse is the body of GET /api/edges.
type EdgesResponse struct {
	Edges []fleet.EdgeState `json:"edges"`
}

// DeletionsResponse is the body of GET /api/deletions.
type DeletionsResponse struct {
	Deletions []fleet.DeletionState `json:"deletions"`
	// Next is the cursor of the next page (the after parameter); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

func errNoMonitor() error {
	return faceauth.E(faceauth.KindUnavailable, "feed_not_running",
		"Edges are not monitored: the change feed (NATS) is not running in this central process.")
}

func (s *Server) listEdges(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Edges == nil {
		api.WriteError(w, r, s.log, errNoMonitor())
		return
	}
	api.WriteJSON(w, http.StatusOK, EdgesResponse{Edges: s.cfg.Edges.Edges(time.Now())})
}

// ForgetEdgeResponse is the body of DELETE /api/edges/{id}.
type ForgetEdgeResponse struct {
	ID        string `json:"id"`
	Forgotten bool   `json:"forgotten"`
}

// forgetEdge drops an edge taken out of service from /api/edges and from
// the pending lists of /api/deletions; otherwise a decommissioned device
// shows as offline, and fails `central edges --check`, for ever. An edge
// that is still running reappears at its next heartbeat.
func (s *Server) forgetEdge(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Edges == nil {
		api.WriteError(w, r, s.log, errNoMonitor())
		return
	}
	id := r.PathValue("id")
	if err := pb.ValidateEdgeID(id); err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	known := false
	for _, e := range s.cfg.Edges.Edges(time.Now()) {
		known = known || e.ID == id
	}
	if !known {
		api.WriteError(w, r, s.log, faceauth.E(faceauth.KindNotFound, "edge_not_found",
			"No edge %q has reported to this central.", id))
		return
	}
	if err := s.cfg.Edges.Forget(r.Context(), id); err != nil {
		api.WriteError(w, r, s.log, faceauth.Wrap(err, faceauth.KindUnavailable, "feed_unavailable",
			"The edge could not be forgotten: the change feed (NATS) did not answer; try again."))
		return
	}
	s.log.Info("edge forgotten", "edge", id)
	api.WriteJSON(w, http.StatusOK, ForgetEdgeResponse{ID: id, Forgotten: true})
}

// listDeletions pages through the registry's deletion records in ascending
// revision, each with the edges that have and have not confirmed the
// purge. pending=true keeps only deletions some edge has not confirmed
// (a page may then hold fewer than limit).
func (s *Server) listDeletions(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Edges == nil {
		api.WriteError(w, r, s.log, errNoMonitor())
		return
	}
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "invalid_cursor",
				"The after parameter must be the next value of an earlier page."))
			return
		}
		after = n
	}
	pendingOnly := false
	if v := q.Get("pending"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			api.WriteError(w, r, s.log, faceauth.E(faceauth.KindInvalid, "invalid_pending",
				"The pending parameter must be true or false."))
			return
		}
		pendingOnly = b
	}
	dels, next, err := s.cfg.Registry.deletionRecords(r.Context(), after, limit)
	if err != nil {
		api.WriteError(w, r, s.log, err)
		return
	}
	resp := DeletionsResponse{Deletions: []fleet.DeletionState{}}
	for _, d := range s.cfg.Edges.Deletions(dels) {
		if !pendingOnly || len(d.Pending) > 0 {
			resp.Deletions = append(resp.Deletions, d)
		}
	}
	if next > 0 {
		resp.Next = strconv.FormatUint(next, 10)
	}
	api.WriteJSON(w, http.StatusOK, resp)
}

// deletionRecords returns up to limit deletion records with a revision
// above after, in ascending revision, and the cursor of the next page (0
// on the last). Like Snapshot it leaves out a deletion superseded before
// it completed (the user is live at a lower revision).
func (r *Registry) deletionRecords(ctx context.Context, after uint64, limit int) ([]*pb.Deletion, uint64, error) {
	start := ""
	if after > 0 {
		start = deletionKey(after)
	}
	keys, err := r.store.List(ctx, deletionsPrefix, start, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list deletions: %w", err)
	}
	dels, err := r.readDeletions(ctx, keys)
	if err != nil {
		return nil, 0, err
	}
	// Leave out deletions superseded before they completed.
	err = parallel(ctx, len(dels), func(ctx context.Context, i int) error {
		if dels[i] == nil {
			return nil
		}
		rec, _, _, err := r.read(ctx, dels[i].UserId)
		if err != nil {
			return err
		}
		if rec != nil && rec.Revision < dels[i].Revision {
			dels[i] = nil
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := dels[:0]
	for _, d := range dels {
		if d != nil {
			out = append(out, d)
		}
	}
	var next uint64
	if len(keys) == limit {
		next, _ = revisionOfDeletionKey(keys[len(keys)-1])
	}
	return out, next, nil
}

package api

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/xplore/faceauth"
)

// AdmitConfig bounds the image requests a server holds at once, so memory
// stays bounded however many arrive: Slots requests in the face pipeline
// (each decodes one image at a time) and Queue more waiting for a slot,
// each at most Wait. Everything beyond is answered 503 with Retry-After at
// once, before its body is read.
type AdmitConfig struct {
	// Slots is how many requests run the face pipeline at once; it should
	// be the engine's worker count. <= 0 means runtime.GOMAXPROCS(0), the
	// engine's default.
	Slots int
	// Queue is how many admitted requests may wait for a slot; < 0 means 0.
	Queue int
	// Wait is the longest a request waits for a slot before it is answered
	// 503; <= 0 means DefaultAdmit.Wait.
	Wait time.Duration
	// IdleRelease returns freed memory to the operating system once no
	// request has been admitted for this long (a burst's decoded images
	// otherwise stay in the process's RSS); 0 never does.
	IdleRelease time.Duration
	// PerClient is how many of the Slots+Queue places one client (a token
	// subject, see Client) may hold at once; 0 means no share. Without it
	// one door, or a token taken from one, sending its bodies slowly holds
	// every place for the read timeout and every other door gets 503.
	PerClient int
}

// DefaultAdmit is the admission used when none is configured: 64 waiting
// requests, each for at most 10 seconds, memory given back after 10
// seconds idle, at most 16 places for one client.
var DefaultAdmit = AdmitConfig{Queue: 64, Wait: 10 * time.Second, IdleRelease: 10 * time.Second, PerClient: 16}

// Admission admits image requests in two steps: Enter when a request
// arrives (before reading its body), Slot when it is about to run the face
// pipeline. A nil *Admission admits everything.
type Admission struct {
	cfg   AdmitConfig
	slots chan struct{}
	// held bounds the requests between Enter and their leave: the slots
	// plus the queue.
	held chan struct{}

	mu    sync.Mutex
	per   map[string]int // places held by client; absent: none
	idle  *time.Timer
	shed  func(reason string)
	relse func()
}

// NewAdmission returns an admission with cfg's bounds.
func NewAdmission(cfg AdmitConfig) *Admission {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.GOMAXPROCS(0)
	}
	cfg.Queue = max(cfg.Queue, 0)
	cfg.PerClient = max(cfg.PerClient, 0)
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultAdmit.Wait
	}
	return &Admission{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.Slots),
		held:  make(chan struct{}, cfg.Slots+cfg.Queue),
		per:   map[string]int{},
		relse: debug.FreeOSMemory,
	}
}

// Config returns the admission's settings, defaults applied.
func (a *Admission) Config() AdmitConfig { return a.cfg }

// OnShed sets a function called with "queue_full", "client_share" or
// "wait" for every request shed, e.g. to count it in a metric. Call it
// before serving.
func (a *Admission) OnShed(f func(reason string)) { a.shed = f }

// Held returns how many requests are admitted (running or waiting) and how
// many of them hold a pipeline slot.
func (a *Admission) Held() (admitted, running int) {
	if a == nil {
		return 0, 0
	}
	return len(a.held), len(a.slots)
}

// EnterForm admits an image request (Enter, for the request's client)
// and then reads its form, at most maxBody bytes: the body is read only
// once the request holds its place. The caller calls leave when done.
func (a *Admission) EnterForm(w http.ResponseWriter, r *http.Request, maxBody int64) (form *Form, leave func(), err error) {
	leave, err = a.Enter(Client(r))
	if err != nil {
		return nil, nil, err
	}
	form, err = ParseForm(w, r, maxBody)
	if err != nil {
		leave()
		return nil, nil, err
	}
	return form, leave, nil
}

// Enter admits a request of client (Client's name for it) that carries an
// image, or answers at once with a KindUnavailable error carrying
// Retry-After when Slots+Queue requests are already admitted, or PerClient
// of client's. The caller must call leave exactly once when done.
func (a *Admission) Enter(client string) (leave func(), err error) {
	if a == nil {
		return func() {}, nil
	}
	a.mu.Lock()
	if a.cfg.PerClient > 0 && a.per[client] >= a.cfg.PerClient {
		a.mu.Unlock()
		a.shedOne("client_share")
		return nil, a.busy()
	}
	select {
	case a.held <- struct{}{}:
	default:
		a.mu.Unlock()
		a.shedOne("queue_full")
		return nil, a.busy()
	}
	a.per[client]++
	if a.idle != nil {
		a.idle.Stop()
	}
	a.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { a.leave(client) }) }, nil
}

func (a *Admission) leave(client string) {
	a.mu.Lock()
	if a.per[client]--; a.per[client] <= 0 {
		delete(a.per, client) // only clients holding places
	}
	a.mu.Unlock()
	<-a.held
	if a.cfg.IdleRelease <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.held) > 0 {
		return
	}
	if a.idle == nil {
		a.idle = time.AfterFunc(a.cfg.IdleRelease, a.release)
		return
	}
	a.idle.Reset(a.cfg.IdleRelease)
}

// release gives memory back unless a request arrived meanwhile.
func (a *Admission) release() {
	if len(a.held) == 0 {
		a.relse()
	}
}

// Slot waits for a face pipeline slot, at most the configured Wait, and
// returns its release. When none frees up in time it answers a
// KindUnavailable error carrying Retry-After; when ctx ends, ctx's error.
func (a *Admission) Slot(ctx context.Context) (release func(), err error) {
	if a == nil {
		return func() {}, nil
	}
	select {
	case a.slots <- struct{}{}:
	default:
		t := time.NewTimer(a.cfg.Wait)
		defer t.Stop()
		select {
		case a.slots <- struct{}{}:
		case <-t.C:
			a.shedOne("wait")
			return nil, a.busy()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() { once.Do(func() { <-a.slots }) }, nil
}

func (a *Admission) shedOne(reason string) {
	if a.shed != nil {
		a.shed(reason)
	}
}

// busy is the 503 of a shed request. A client retrying after the wait
// finds the queue drained if the burst has passed.
func (a *Admission) busy() error {
	return WithRetryAfter(faceauth.E(faceauth.KindUnavailable, "busy",
		"The server is busy with other images; try again in a few seconds."), a.cfg.Wait)
}

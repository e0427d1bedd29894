package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xplore/faceauth"
)

// gateProber is an engine behind a gate: each analysis says it has
// started and waits until the test opens the gate, so the test decides
// when a slot frees up instead of racing the pipeline.
type gateProber struct {
	faceauth.Engine
	entered chan struct{}
	open    chan struct{}
}

func (p *gateProber) Analyze(ctx context.Context, img []byte, req faceauth.Request) (*faceauth.Analysis, error) {
	p.entered <- struct{}{}
	<-p.open
	return p.Engine.Analyze(ctx, img, req)
}

// countingReader counts the bytes read from a request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAdmissionSheds checks bounded admission through the verify handler:
// with the one slot busy and the one queue place taken, the next request
// is answered 503 with Retry-After at once, before its body is read; the
// admitted ones finish normally once the slot frees up; and one that
// waits longer than the configured wait gets 503 as well.
func TestAdmissionSheds(t *testing.T) {
	eng := fake
	photo := groupPhoto(t)
	a, err := eng.Analyze(t.Context(), photo, faceauth.Request{})
	if err != nil {
		t.Fatal(err)
	}
	ct, body := multipartBody(t, map[string]string{"user_id": "alice"}, [3]string{"image", "p.jpg", string(photo)})
	verify := func(h *FaceHandlers, r io.Reader) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/verify", r)
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.Verify(rec, req)
		return rec
	}
	wantBusy := func(t *testing.T, rec *httptest.ResponseRecorder, retryAfter string) {
		t.Helper()
		var e ErrorBody
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != 503 || e.Code != "busy" || rec.Header().Get("Retry-After") != retryAfter {
			t.Fatalf("got %d %s Retry-After %q, want 503 busy Retry-After %s", rec.Code, rec.Body, rec.Header().Get("Retry-After"), retryAfter)
		}
	}
	newHandlers := func(cfg AdmitConfig) (*FaceHandlers, *gateProber, *Admission) {
		gp := &gateProber{Engine: eng, entered: make(chan struct{}, 4), open: make(chan struct{})}
		adm := NewAdmission(cfg)
		m := newTestMetrics()
		adm.OnShed(m.Shed)
		return &FaceHandlers{Engine: gp, Info: eng.Info(), Gallery: mapGallery{"alice": {a.Embedding}}, Admission: adm, Metrics: m, Log: quiet}, gp, adm
	}

	t.Run("queue full", func(t *testing.T) {
		h, gp, adm := newHandlers(AdmitConfig{Slots: 1, Queue: 1, Wait: time.Hour})
		done := make(chan *httptest.ResponseRecorder, 2)
		go func() { done <- verify(h, bytes.NewReader(body)) }()
		<-gp.entered // the first holds the slot
		go func() { done <- verify(h, bytes.NewReader(body)) }()
		waitFor(t, func() bool { n, _ := adm.Held(); return n == 2 }) // the second waits in the queue

		cr := &countingReader{r: bytes.NewReader(body)}
		shed := make(chan *httptest.ResponseRecorder, 1)
		go func() { shed <- verify(h, cr) }()
		select {
		case rec := <-shed:
			wantBusy(t, rec, "3600")
		case <-time.After(time.Minute):
			close(gp.open)
			t.Fatal("a request beyond the queue was not answered at once")
		}
		if n := cr.n.Load(); n != 0 {
			t.Errorf("the shed request's body was read (%d bytes)", n)
		}
		close(gp.open)
		for range 2 {
			if rec := <-done; rec.Code != 200 {
				t.Errorf("admitted request: %d %s", rec.Code, rec.Body)
			}
		}
		if n, _ := adm.Held(); n != 0 {
			t.Errorf("%d requests still held", n)
		}
	})

	t.Run("one client's share", func(t *testing.T) {
		// A client that holds its share (here sending nothing more, as
		// one trickling its bodies would) cannot take the places the
		// other doors need.
		h, gp, adm := newHandlers(AdmitConfig{Slots: 1, Queue: 4, PerClient: 2, Wait: time.Hour})
		from := func(addr string, r io.Reader) *httptest.ResponseRecorder {
			req := httptest.NewRequest("POST", "/api/verify", r)
			req.Header.Set("Content-Type", ct)
			req.RemoteAddr = addr
			rec := httptest.NewRecorder()
			h.Verify(rec, req)
			return rec
		}
		done := make(chan *httptest.ResponseRecorder, 3)
		go func() { done <- from("192.0.2.7:1000", bytes.NewReader(body)) }()
		<-gp.entered // the first holds the slot
		go func() { done <- from("192.0.2.7:1001", bytes.NewReader(body)) }()
		waitFor(t, func() bool { n, _ := adm.Held(); return n == 2 })

		cr := &countingReader{r: bytes.NewReader(body)}
		shed := make(chan *httptest.ResponseRecorder, 1)
		go func() { shed <- from("192.0.2.7:1002", cr) }()
		select {
		case rec := <-shed:
			wantBusy(t, rec, "3600")
		case <-time.After(time.Minute):
			close(gp.open)
			t.Fatal("a third request of a client with a share of two was not answered at once")
		}
		if n := cr.n.Load(); n != 0 {
			t.Errorf("the shed request's body was read (%d bytes)", n)
		}
		// Another client still gets a place.
		go func() { done <- from("192.0.2.8:1000", bytes.NewReader(body)) }()
		waitFor(t, func() bool { n, _ := adm.Held(); return n == 3 })
		close(gp.open)
		for range 3 {
			if rec := <-done; rec.Code != 200 {
				t.Errorf("admitted request: %d %s", rec.Code, rec.Body)
			}
		}
		if n, _ := adm.Held(); n != 0 {
			t.Errorf("%d requests still held", n)
		}
	})

	t.Run("wait over", func(t *testing.T) {
		h, gp, _ := newHandlers(AdmitConfig{Slots: 1, Queue: 1, Wait: time.Millisecond})
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- verify(h, bytes.NewReader(body)) }()
		<-gp.entered
		// The slot stays taken until the gate opens, so this one cannot
		// get it within its wait.
		wantBusy(t, verify(h, bytes.NewReader(body)), "1")
		close(gp.open)
		if rec := <-done; rec.Code != 200 {
			t.Errorf("admitted request: %d %s", rec.Code, rec.Body)
		}
	})
}

// TestAdmissionIdleRelease checks that memory is given back once the last
// admitted request has left and nothing arrived for IdleRelease.
func TestAdmissionIdleRelease(t *testing.T) {
	adm := NewAdmission(AdmitConfig{Slots: 1, Queue: 1, IdleRelease: time.Millisecond})
	released := make(chan struct{}, 8)
	adm.relse = func() { released <- struct{}{} }
	leave, err := adm.Enter("test")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
		t.Fatal("released while a request was held")
	default:
	}
	leave()
	leave() // a second call is harmless
	select {
	case <-released:
	case <-time.After(time.Minute):
		t.Fatal("memory was not released after the idle period")
	}
}

// waitFor polls cond until it holds, failing after a generous minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
	}
}

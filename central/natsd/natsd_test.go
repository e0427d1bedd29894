package natsd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func TestJetStreamSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := start(t, Options{StoreDir: dir})
	url := s.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	s.Shutdown()

	// Same address and folder: the message is still there.
	s2 := start(t, Options{StoreDir: dir, Listen: strings.TrimPrefix(url, "nats://")})
	nc2, err := nats.Connect(s2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	st, err := js2.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "t.a")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "kept" {
		t.Fatalf("got %q after restart", m.Data)
	}
}

func TestUsersAndPermissions(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{Users: []User{
		{Name: "central", Password: "s3cret"},
		{NKey: pub, Publish: []string{"allowed.>"}, Subscribe: []string{"_INBOX.>"}},
	}})

	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []nats.Option
		ok   bool
	}{
		{"no credentials", nil, false},
		{"wrong password", []nats.Option{nats.UserInfo("central", "nope")}, false},
		{"password", []nats.Option{nats.UserInfo("central", "s3cret")}, true},
		{"nkey", []nats.Option{nkeyOpt}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(s.ClientURL(), tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("connect: err = %v, want ok = %v", err, tc.ok)
			}
			if nc != nil {
				nc.Close()
			}
		})
	}

	// The NKey user may publish only where allowed.
	errs := make(chan error, 4)
	nc, err := nats.Connect(s.ClientURL(), nkeyOpt, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("allowed.x", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("denied.x", nil); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), "denied.x") {
			t.Fatalf("unexpected async error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing to a denied subject raised no permissions violation")
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	p := func(name string) string { return filepath.Join(dir, name) }
	s := start(t, Options{TLSCert: p("server.pem"), TLSKey: p("server.key"), TLSCA: p("ca.pem")})
	if !strings.HasPrefix(s.ClientURL(), "tls://") {
		t.Fatalf("ClientURL %q does not say tls://", s.ClientURL())
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.RootCAs(p("ca.pem"))); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.RootCAs(p("ca.pem")), nats.ClientCert(p("client.pem"), p("client.key")))
	if err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	nc.Close()
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no store", Options{Listen: "127.0.0.1:0"}, "store folder"},
		{"bad listen", Options{Listen: "nowhere", StoreDir: "x"}, "listen address"},
		{"bad port", Options{Listen: "127.0.0.1:99999", StoreDir: "x"}, "bad port"},
		{"cert without key", Options{StoreDir: "x", TLSCert: "c.pem"}, "certificate and a key"},
		{"user with both", Options{StoreDir: "x", Users: []User{{Name: "a", NKey: "U"}}}, "either"},
		{"open beyond loopback", Options{Listen: "0.0.0.0:0", StoreDir: "x"}, "without authentication: set NATS_EDGE_KEYS"},
		{"open on every interface", Options{Listen: ":0", StoreDir: "x"}, "without authentication"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if s, err := Start(ctx, Options{Listen: l.Addr().String(), StoreDir: t.TempDir()}); err == nil {
		s.Shutdown()
		t.Fatal("started on a port in use")
	}
}

// newCert writes name.pem and name.key into dir, signed by parent (self-
// signed when parent is nil), valid for 127.0.0.1.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+".key", "EC PRIVATE KEY", kb)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestInProcessWithTLSAndUsers(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	p := func(name string) string { return filepath.Join(dir, name) }
	s := start(t, Options{TLSCert: p("server.pem"), TLSKey: p("server.key"), TLSCA: p("ca.pem"),
		Users: []User{{Name: "central", Password: "pw"}}})
	// No certificate, no TLS: the in-process connection needs neither,
	// but it still authenticates.
	if nc, err := nats.Connect("", nats.InProcessServer(s)); err == nil {
		nc.Close()
		t.Fatal("in-process connection without credentials accepted")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.UserInfo("central", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.AccountInfo(t.Context()); err != nil {
		t.Fatalf("JetStream in process: %v", err)
	}
}

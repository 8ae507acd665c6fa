package signals

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// The wait TrackConns gives returns only once the handlers that Close cut
// have returned: Close itself does not wait for them, and the user store's
// database must outlive them.
func TestTrackConnsWaitsForHandlersAfterClose(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		finished.Store(true)
	})}
	wait := TrackConns(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	client := &http.Client{Transport: &http.Transport{}}
	go func() {
		if resp, err := client.Get("http://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	<-served

	waiting := make(chan struct{})
	waited := make(chan bool)
	go func() {
		close(waiting)
		wait()
		waited <- finished.Load()
	}()
	<-waiting
	close(release) // the handler ends only now, after wait was called
	if !<-waited {
		t.Fatal("wait returned while a handler Close had cut was still running")
	}
}

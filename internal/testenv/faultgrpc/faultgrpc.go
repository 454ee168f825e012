// Package faultgrpc sits between a CRI client and a runtime, on a unix
// socket of its own, and forwards every gRPC call unchanged, as bytes; a
// stalled method never answers, as a hung runtime does. The CRI's twin of
// faultproxy (which speaks the Docker Engine API's HTTP).
//
// It does not import testing, so benchmarks can use it too.
package faultgrpc

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Proxy is one running proxy.
type Proxy struct {
	dir  string
	srv  *grpc.Server
	conn *grpc.ClientConn

	mu      sync.Mutex
	stalled map[string]bool
	calls   map[string]int
	// stallAfter: calls of a method after this many hang.
	stallAfter map[string]int
	// dieAt: the first call of this method is done by the runtime, and the
	// runtime dies before it answers: from then on, down.
	dieAt string
	// down: the runtime is dead; every call fails at once, as on a socket
	// nobody listens to, and answers under way are lost.
	down bool
	// endAfter: methods whose answer ends cleanly after this many
	// messages (0: at once, a stream the runtime serves empty).
	endAfter map[string]int
	// endQuietly: methods whose answer ends cleanly, with nothing in it,
	// after this long (a runtime that shuts down while a quiet node sent
	// no event yet).
	endQuietly map[string]time.Duration
}

// Start forwards a socket of its own to endpoint (unix:///path).
func Start(endpoint string) (*Proxy, error) {
	dir, err := os.MkdirTemp("", "faultgrpc-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "cri.sock"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawOut{})))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p := &Proxy{dir: dir, conn: conn, stalled: map[string]bool{}, calls: map[string]int{}, stallAfter: map[string]int{}, endAfter: map[string]int{},
		endQuietly: map[string]time.Duration{}}
	p.srv = grpc.NewServer(grpc.ForceServerCodec(raw{}), grpc.UnknownServiceHandler(p.forward))
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Endpoint is the proxy's socket, for the client.
func (p *Proxy) Endpoint() string { return "unix://" + filepath.Join(p.dir, "cri.sock") }

// Stall makes a method (/runtime.v1.ImageService/RemoveImage) hang until
// its caller gives up, or answer again.
func (p *Proxy) Stall(method string, stall bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled[method] = stall
}

// StallAfter lets n calls of a method through, then makes the next ones
// hang until their callers give up (a runtime that stops answering
// mid-sweep).
func (p *Proxy) StallAfter(method string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stallAfter[method] = n
}

// DieAt makes the runtime die under the next call of method: the runtime
// does it, its answer is lost, and every call fails from then on (answers
// of calls under way included) until Revive. containerd's CRI deletes an
// image's record before it waits for its garbage collection: a kill in
// that window is this.
func (p *Proxy) DieAt(method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dieAt = method
}

// EndAtOnce makes the proxy answer method with a stream that ends at once,
// cleanly, with nothing in it: what CRI-O without enable_pod_events (its
// default) answers GetContainerEvents with.
func (p *Proxy) EndAtOnce(method string) { p.EndAfter(method, 0) }

// EndAfter makes the proxy end the answers to method cleanly after n
// messages: a stream the runtime closes while it serves it.
func (p *Proxy) EndAfter(method string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endAfter[method] = n
}

// EndQuietlyAfter makes the proxy answer method with a stream that sends
// nothing and ends cleanly after d: a runtime that serves the stream, and
// stops (a restart) before anything happened.
func (p *Proxy) EndQuietlyAfter(method string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endQuietly[method] = d
}

// Revive brings the runtime back: calls reach it again.
func (p *Proxy) Revive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.dieAt = false, ""
}

// dead reports whether the runtime is down, after a call of method got
// its answer (it dies there if method is the one to die at).
func (p *Proxy) dead(method string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dieAt != "" && method == p.dieAt {
		p.down = true
	}
	return p.down
}

// errDown is what a client sees of a dead runtime.
var errDown = status.Error(codes.Unavailable, "faultgrpc: the runtime is down")

// Calls is how many times each method was called.
func (p *Proxy) Calls(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// Close stops the proxy.
func (p *Proxy) Close() {
	p.srv.Stop()
	_ = p.conn.Close()
	os.RemoveAll(p.dir)
}

// forward relays one call, whatever its service, message by message.
func (p *Proxy) forward(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	p.mu.Lock()
	p.calls[method]++
	after, limited := p.stallAfter[method]
	stalled := p.stalled[method] || limited && p.calls[method] > after
	down := p.down
	endAfter, ends := p.endAfter[method]
	quietFor, quiet := p.endQuietly[method]
	p.mu.Unlock()
	if down {
		return errDown
	}
	if ends && endAfter == 0 {
		return nil
	}
	if quiet {
		select {
		case <-time.After(quietFor):
			return nil
		case <-in.Context().Done():
			return in.Context().Err()
		}
	}
	if stalled {
		<-in.Context().Done()
		return in.Context().Err()
	}
	ctx := in.Context()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, md.Copy()) // containerd's namespace header, among others
	}
	out, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	go func() {
		for {
			var m []byte
			if err := in.RecvMsg(&m); err != nil {
				_ = out.CloseSend()
				return
			}
			if err := out.SendMsg(&m); err != nil {
				return
			}
		}
	}()
	for {
		var m []byte
		err := out.RecvMsg(&m)
		if p.dead(method) {
			return errDown // done or not, its answer is lost
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err // the runtime's status, code and message, as it gave it
		}
		if err := in.SendMsg(&m); err != nil {
			return err
		}
		if endAfter--; ends && endAfter == 0 {
			return nil
		}
	}
}

// raw passes messages through as bytes.
type raw struct{}

func (raw) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

func (raw) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (raw) Name() string { return "proto" }

// rawOut is raw for the proxy's calls to the runtime, nameless: a codec
// forced on a call names its content type "application/grpc+<name>", and
// one without a name leaves it "application/grpc". CRI-O serves gRPC and
// HTTP on one socket, tells them apart by that exact content type, and
// resets a connection whose calls say "application/grpc+proto".
type rawOut struct{}

func (rawOut) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*(v.(*[]byte)))}, nil
}

func (rawOut) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawOut) Name() string { return "" }

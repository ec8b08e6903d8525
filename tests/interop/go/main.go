// Command spiffe-interop-peer is a go-spiffe v2 test peer for the Rust TLS crate's interop
// tests: the same protocol and output as the Rust examples mtls_server / mtls_client.
//
//	spiffe-interop-peer server --listen ADDR [--allow ID | --allow-td TD | --allow any] [--hint H]
//	spiffe-interop-peer client --connect ADDR [--expect ID | --expect-td TD | --expect any] [--send TEXT] [--hint H]
//	spiffe-interop-peer verdict < cases.jsonl
//	spiffe-interop-peer grpc-server|grpc-client [flags] (grpc.go)
//	spiffe-interop-peer libbench-jwt|libbench-hold [flags] (libbench.go)
//
// The server prints "listening on ADDR" once it accepts, then answers each connection's first
// line with "hello <peer SPIFFE ID> from go". The client sends one line, prints the server's
// answer and "serial=<hex>" of the server's leaf; on a handshake or authorization failure it
// prints one line and exits 1. The agent comes from SPIFFE_ENDPOINT_SOCKET.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: spiffe-interop-peer server|client [flags]")
	}
	if os.Args[1] == "bundle" && len(os.Args) == 3 {
		bundleRoundTrip(os.Args[2])
		return
	}
	if os.Args[1] == "federation-fetch" || os.Args[1] == "federation-serve" {
		federationMain(os.Args[1], os.Args[2:]) // federation.go; no agent
		return
	}
	if os.Args[1] == "libbench-jwt" || os.Args[1] == "libbench-hold" {
		libbenchMain(os.Args[1], os.Args[2:]) // libbench.go: the library figures of make bench
		return
	}
	if os.Args[1] == "verdict" {
		// No agent: reads cases on stdin, prints go-spiffe's verdicts (verdict.go).
		verdicts(os.Stdin, os.Stdout)
		return
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "", "server: address to listen on")
	connect := fs.String("connect", "", "client: address to dial")
	allow := fs.String("allow", "any", "server: SPIFFE ID to allow, or any")
	allowTD := fs.String("allow-td", "", "server: trust domain to allow")
	expect := fs.String("expect", "any", "client: server SPIFFE ID to expect, or any")
	expectTD := fs.String("expect-td", "", "client: trust domain to expect")
	send := fs.String("send", "hi", "client: line to send")
	hint := fs.String("hint", "", "pick the X.509-SVID with this hint")
	seconds := fs.Int("seconds", 5, "bench: how long to run")
	conns := fs.Int("conns", 4, "bench: concurrent connection loops")
	_ = fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []workloadapi.X509SourceOption
	if *hint != "" {
		want := *hint
		opts = append(opts, workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			for _, s := range svids {
				if s.Hint == want {
					return s
				}
			}
			return svids[0]
		}))
	}
	source, err := workloadapi.NewX509Source(ctx, opts...)
	if err != nil {
		fail("x509 source: %v", err)
	}
	defer source.Close()
	// Entries propagate one by one: wait until the hinted SVID is there, as the Rust
	// X509Source builder does.
	for *hint != "" {
		if svid, err := source.GetX509SVID(); err == nil && svid.Hint == *hint {
			break
		}
		if ctx.Err() != nil {
			fail("no X.509-SVID with hint %q", *hint)
		}
		time.Sleep(200 * time.Millisecond)
	}

	switch os.Args[1] {
	case "server":
		serve(source, *listen, authorizer(*allow, *allowTD))
	case "client":
		dial(source, *connect, authorizer(*expect, *expectTD), *send)
	case "grpc-server":
		grpcServe(source, *listen, authorizer(*allow, *allowTD))
	case "grpc-client":
		grpcCall(source, *connect, authorizer(*expect, *expectTD))
	case "bench":
		bench(source, *connect, authorizer(*expect, *expectTD), *seconds, *conns)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}

func authorizer(id, td string) tlsconfig.Authorizer {
	if td != "" {
		return tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString(td))
	}
	if id == "any" {
		return tlsconfig.AuthorizeAny()
	}
	return tlsconfig.AuthorizeID(spiffeid.RequireFromString(id))
}

func serve(source *workloadapi.X509Source, addr string, authz tlsconfig.Authorizer) {
	ln, err := spiffetls.ListenWithMode(context.Background(), "tcp", addr,
		spiffetls.MTLSServerWithSource(authz, source))
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			fail("accept: %v", err)
		}
		go func(conn net.Conn) {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				fmt.Fprintf(os.Stderr, "connection rejected: %v\n", err)
				return
			}
			_ = line
			peer, err := spiffetls.PeerIDFromConn(conn)
			if err != nil {
				fmt.Fprintf(os.Stderr, "no peer id: %v\n", err)
				return
			}
			fmt.Fprintf(conn, "hello %s from go\n", peer)
		}(conn)
	}
}

func dial(source *workloadapi.X509Source, addr string, authz tlsconfig.Authorizer, send string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := spiffetls.DialWithMode(ctx, "tcp", addr, spiffetls.MTLSClientWithSource(authz, source))
	if err != nil {
		fail("handshake failed: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", send); err != nil {
		fail("handshake failed: %v", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fail("handshake failed: %v", err)
	}
	state := conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
	fmt.Print(line)
	fmt.Printf("serial=%s\n", state.PeerCertificates[0].SerialNumber.Text(16))
}

// bench runs `conns` loops of full mTLS handshakes (connect, one line each way, close) for
// `seconds` and prints "handshakes=N elapsed_ms=M". Go's client keeps no session cache, so
// every connection is a full handshake.
func bench(source *workloadapi.X509Source, addr string, authz tlsconfig.Authorizer, seconds, conns int) {
	// Close with RST (SO_LINGER 0), as the Rust bench client does: thousands of connections in
	// TIME_WAIT would exhaust the loopback's ephemeral ports between runs.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		})
	}}
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	start := time.Now()
	var total atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				conn, err := spiffetls.DialWithMode(context.Background(), "tcp", addr,
					spiffetls.MTLSClientWithSource(authz, source), spiffetls.WithDialer(dialer))
				if err != nil {
					fail("handshake failed: %v", err)
				}
				fmt.Fprint(conn, "x\n")
				if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
					fail("read: %v", err)
				}
				conn.Close()
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("handshakes=%d elapsed_ms=%d\n", total.Load(), time.Since(start).Milliseconds())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

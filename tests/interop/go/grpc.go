// gRPC modes of the peer, for the Rust TLS crate's tonic adapters (crates/tls/tests/adapters.rs):
// go-spiffe's spiffegrpc/grpccredentials over the standard gRPC health service, which both
// sides have without code generation.
//
//	spiffe-interop-peer grpc-server --listen ADDR [--allow ID | --allow-td TD | --allow any] [--hint H]
//	spiffe-interop-peer grpc-client --connect ADDR [--expect ID | --expect-td TD | --expect any] [--hint H]
//
// The server prints "listening on ADDR", then "call from <caller SPIFFE ID>" for each call, and
// answers Health.Check with SERVING and the caller's ID in the "spiffe-id" response header. The
// client calls Health.Check once and prints "status=<status> server=<server SPIFFE ID>
// caller=<the spiffe-id header>"; when the handshake or the call fails it prints one line and
// exits 1.
package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func grpcServe(source *workloadapi.X509Source, addr string, authz tlsconfig.Authorizer) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail("listen: %v", err)
	}
	server := grpc.NewServer(
		grpc.Creds(grpccredentials.MTLSServerCredentials(source, source, authz)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			id, ok := grpccredentials.PeerIDFromContext(ctx)
			if !ok {
				return nil, status.Error(codes.Unauthenticated, "no SPIFFE ID")
			}
			fmt.Printf("call from %s\n", id)
			_ = grpc.SetHeader(ctx, metadata.Pairs("spiffe-id", id.String()))
			return handler(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(server, health.NewServer())
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := server.Serve(ln); err != nil {
		fail("serve: %v", err)
	}
}

func grpcCall(source *workloadapi.X509Source, addr string, authz tlsconfig.Authorizer) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(grpccredentials.MTLSClientCredentials(source, source, authz)))
	if err != nil {
		fail("grpc client: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var header metadata.MD
	var p peer.Peer
	reply, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{},
		grpc.Header(&header), grpc.Peer(&p))
	if err != nil {
		fail("grpc call failed: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	server, ok := grpccredentials.PeerIDFromPeer(&p)
	if !ok {
		fail("grpc call: no server SPIFFE ID")
	}
	fmt.Printf("status=%s server=%s caller=%s\n", reply.GetStatus(), server, strings.Join(header.Get("spiffe-id"), ","))
}

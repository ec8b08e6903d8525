package main

// The go-spiffe side of the library figures in docs/benchmarks.md ("Library figures"), driven
// by crates/bench/examples/lib_bench.rs. The agent comes from SPIFFE_ENDPOINT_SOCKET.
//
//	spiffe-interop-peer libbench-jwt --audience AUD --calls N
//	    NewJWTSource, one timed FetchJWTSVID, prints "ready first_ns=T", waits for a line on
//	    stdin (the driver reads the agent's counters meanwhile), then N sequential
//	    FetchJWTSVID calls for the same audience and prints
//	    "calls=N elapsed_ns=E p50_ns=P p99_ns=Q". JWTSource.FetchJWTSVID has no cache: every
//	    call is a Workload API FetchJWTSVID RPC (go-spiffe v2 workloadapi/jwtsource.go).
//	spiffe-interop-peer libbench-hold
//	    NewX509Source, waits until it holds an X.509-SVID, prints "ready", then idles until
//	    stdin closes or the process is killed (the driver reads /proc/PID/status meanwhile).

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func libbenchMain(mode string, args []string) {
	switch mode {
	case "libbench-jwt":
		fs := flag.NewFlagSet(mode, flag.ExitOnError)
		audience := fs.String("audience", "bench", "the JWT-SVID audience")
		calls := fs.Int("calls", 1000, "timed FetchJWTSVID calls")
		_ = fs.Parse(args)
		libbenchJWT(*audience, *calls)
	case "libbench-hold":
		libbenchHold()
	}
}

func libbenchJWT(audience string, calls int) {
	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	source, err := workloadapi.NewJWTSource(startCtx)
	if err != nil {
		fail("jwt source: %v", err)
	}
	defer source.Close()
	params := jwtsvid.Params{Audience: audience}
	start := time.Now()
	if _, err := source.FetchJWTSVID(ctx, params); err != nil {
		fail("first FetchJWTSVID: %v", err)
	}
	fmt.Printf("ready first_ns=%d\n", time.Since(start).Nanoseconds())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail("waiting for the go line: %v", err)
	}
	lat := make([]int64, 0, calls)
	begin := time.Now()
	for i := 0; i < calls; i++ {
		t := time.Now()
		svid, err := source.FetchJWTSVID(ctx, params)
		if err != nil || svid.Marshal() == "" {
			fail("FetchJWTSVID %d: %v", i, err)
		}
		lat = append(lat, time.Since(t).Nanoseconds())
	}
	elapsed := time.Since(begin).Nanoseconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("calls=%d elapsed_ns=%d p50_ns=%d p99_ns=%d\n",
		calls, elapsed, nearestRank(lat, 50), nearestRank(lat, 99))
}

// nearestRank is the p-th percentile of sorted values by the nearest-rank method, the same
// definition lib_bench.rs uses for the Rust side.
func nearestRank(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func libbenchHold() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	source, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		fail("x509 source: %v", err)
	}
	defer source.Close()
	if _, err := source.GetX509SVID(); err != nil {
		fail("no X.509-SVID: %v", err)
	}
	fmt.Println("ready")
	// Idle: the driver measures, then closes stdin or kills the process.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

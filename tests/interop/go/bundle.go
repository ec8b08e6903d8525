package main

// The SPIFFE bundle format's Go side (crates/tls/tests/bundle_format.rs): reads one SPIFFE
// bundle document for the trust domain named on the command line from stdin, parses it with
// go-spiffe's spiffebundle.Parse and writes spiffebundle.Marshal's bytes to stdout; a parse
// error is "err: REASON" on stdout and exit 1.

import (
	"fmt"
	"io"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func bundleRoundTrip(trustDomain string) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		fail("trust domain: %v", err)
	}
	doc, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	bundle, err := spiffebundle.Parse(td, doc)
	if err != nil {
		fmt.Printf("err: %v\n", err)
		os.Exit(1)
	}
	out, err := bundle.Marshal()
	if err != nil {
		fail("marshal: %v", err)
	}
	_, _ = os.Stdout.Write(out)
}

// Federation modes of the interop peer: go-spiffe's bundle endpoint client and server against
// the Rust federation module (crates/tls/tests/federation.rs). No agent is used.
//
//	spiffe-interop-peer federation-fetch --url URL --trust-domain TD (--web-roots PEM | --endpoint-id ID --bundle PEM)
//	spiffe-interop-peer federation-serve --listen ADDR --trust-domain TD --bundle-json FILE (--cert PEM --key PEM | --svid PEM --svid-key PEM)
//
// federation-fetch prints the same line as the Rust example federation_fetch:
// "trust_domain=TD x509_authorities=N jwt_keys=M refresh_hint=S sequence=Q" (exit 0), or one
// line with the reason (exit 1). federation-serve serves federation.NewHandler with https_web
// (--cert/--key) or https_spiffe (--svid/--svid-key), reading the bundle from --bundle-json on
// every request so a test can rotate it, and prints "listening on ADDR".
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func federationMain(mode string, args []string) {
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	url := fs.String("url", "", "fetch: bundle endpoint URL")
	td := fs.String("trust-domain", "", "trust domain of the bundle")
	webRoots := fs.String("web-roots", "", "fetch: https_web roots (PEM)")
	endpointID := fs.String("endpoint-id", "", "fetch: https_spiffe endpoint SPIFFE ID")
	bundlePEM := fs.String("bundle", "", "fetch: https_spiffe bundle of the endpoint's trust domain (PEM)")
	listen := fs.String("listen", "", "serve: address to listen on")
	bundleJSON := fs.String("bundle-json", "", "serve: SPIFFE bundle document to serve")
	cert := fs.String("cert", "", "serve: https_web certificate chain (PEM)")
	key := fs.String("key", "", "serve: https_web key (PEM)")
	svid := fs.String("svid", "", "serve: https_spiffe X.509-SVID chain (PEM)")
	svidKey := fs.String("svid-key", "", "serve: https_spiffe X.509-SVID key (PEM)")
	_ = fs.Parse(args)
	trustDomain, err := spiffeid.TrustDomainFromString(*td)
	if err != nil {
		fail("trust domain: %v", err)
	}
	switch mode {
	case "federation-fetch":
		federationFetch(trustDomain, *url, *webRoots, *endpointID, *bundlePEM)
	case "federation-serve":
		federationServe(trustDomain, *listen, *bundleJSON, *cert, *key, *svid, *svidKey)
	default:
		fail("unknown mode %q", mode)
	}
}

func federationFetch(td spiffeid.TrustDomain, url, webRoots, endpointID, bundlePEM string) {
	var option federation.FetchOption
	if webRoots != "" {
		pem, err := os.ReadFile(webRoots)
		if err != nil {
			fail("web roots: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fail("web roots: no certificate")
		}
		option = federation.WithWebPKIRoots(pool)
	} else {
		id, err := spiffeid.FromString(endpointID)
		if err != nil {
			fail("endpoint ID: %v", err)
		}
		held, err := x509bundle.Load(id.TrustDomain(), bundlePEM)
		if err != nil {
			fail("bundle: %v", err)
		}
		option = federation.WithSPIFFEAuth(held, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bundle, err := federation.FetchBundle(ctx, td, url, option)
	if err != nil {
		fail("fetch: %v", err)
	}
	hint := "none"
	if h, ok := bundle.RefreshHint(); ok {
		hint = fmt.Sprint(int64(h / time.Second))
	}
	sequence := "none"
	if s, ok := bundle.SequenceNumber(); ok {
		sequence = fmt.Sprint(s)
	}
	fmt.Printf("trust_domain=%s x509_authorities=%d jwt_keys=%d refresh_hint=%s sequence=%s\n",
		bundle.TrustDomain(), len(bundle.X509Authorities()), len(bundle.JWTAuthorities()), hint, sequence)
}

// fileBundle re-reads the bundle document on every request.
type fileBundle struct {
	td   spiffeid.TrustDomain
	path string
}

func (f fileBundle) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if td != f.td {
		return nil, fmt.Errorf("no bundle for %s", td)
	}
	return spiffebundle.Load(td, f.path)
}

func federationServe(td spiffeid.TrustDomain, listen, bundleJSON, cert, key, svid, svidKey string) {
	handler, err := federation.NewHandler(td, fileBundle{td: td, path: bundleJSON})
	if err != nil {
		fail("handler: %v", err)
	}
	var config *tls.Config
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			fail("https_web certificate: %v", err)
		}
		config = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	} else {
		s, err := x509svid.Load(svid, svidKey)
		if err != nil {
			fail("https_spiffe SVID: %v", err)
		}
		config = tlsconfig.TLSServerConfig(s)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	server := &http.Server{Handler: handler, TLSConfig: config, ReadHeaderTimeout: 10 * time.Second}
	if err := server.ServeTLS(ln, "", ""); err != nil {
		fail("serve: %v", err)
	}
}

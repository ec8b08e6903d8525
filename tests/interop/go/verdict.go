package main

// The differential run's Go side (crates/tls/tests/differential.rs): each stdin line is one
// case as JSON, each stdout line go-spiffe v2's verdict on it, "NAME\tok\tSPIFFE-ID" or
// "NAME\terr\tREASON".
//
//	{"name":N, "kind":"jwt", "token":T, "jwks":J, "td":TD, "audience":A}
//	{"name":N, "kind":"x509", "chain":[B64-DER...], "bundle":[B64-DER...], "td":TD}

import (
	"bufio"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type verdictCase struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Token    string   `json:"token"`
	JWKS     string   `json:"jwks"`
	TD       string   `json:"td"`
	Audience string   `json:"audience"`
	Chain    []string `json:"chain"`
	Bundle   []string `json:"bundle"`
}

func verdicts(in io.Reader, out io.Writer) {
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	w := bufio.NewWriter(out)
	defer w.Flush()
	for scanner.Scan() {
		var c verdictCase
		if err := json.Unmarshal(scanner.Bytes(), &c); err != nil {
			fail("verdict: bad case line: %v", err)
		}
		id, err := verdict(&c)
		if err != nil {
			fmt.Fprintf(w, "%s\terr\t%s\n", c.Name, strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(w, "%s\tok\t%s\n", c.Name, id)
		}
	}
	if err := scanner.Err(); err != nil {
		fail("verdict: reading cases: %v", err)
	}
}

func verdict(c *verdictCase) (string, error) {
	td, err := spiffeid.TrustDomainFromString(c.TD)
	if err != nil {
		return "", err
	}
	switch c.Kind {
	case "jwt":
		bundle, err := jwtbundle.Parse(td, []byte(c.JWKS))
		if err != nil {
			return "", err
		}
		svid, err := jwtsvid.ParseAndValidate(c.Token, bundle, []string{c.Audience})
		if err != nil {
			return "", err
		}
		return svid.ID.String(), nil
	case "x509":
		chain, err := decodeAll(c.Chain)
		if err != nil {
			return "", err
		}
		roots, err := decodeAll(c.Bundle)
		if err != nil {
			return "", err
		}
		var authorities []*x509.Certificate
		for _, der := range roots {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return "", err
			}
			authorities = append(authorities, cert)
		}
		id, _, err := x509svid.ParseAndVerify(chain, x509bundle.FromX509Authorities(td, authorities))
		if err != nil {
			return "", err
		}
		return id.String(), nil
	}
	return "", fmt.Errorf("unknown kind %q", c.Kind)
}

func decodeAll(items []string) ([][]byte, error) {
	var out [][]byte
	for _, item := range items {
		der, err := base64.StdEncoding.DecodeString(item)
		if err != nil {
			return nil, err
		}
		out = append(out, der)
	}
	return out, nil
}

package testcerts_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
)

func leafOf(t *testing.T, p testcerts.Paths) *x509.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(p.Cert, p.Key) // also checks the key matches
	if err != nil {
		t.Fatal(err)
	}
	return kp.Leaf
}

func TestLeaves(t *testing.T) {
	s := testcerts.NewSet(t)
	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	verify := func(c *x509.Certificate, name string, at time.Time, u x509.ExtKeyUsage) error {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{u}})
		return err
	}
	now := time.Now()

	both := leafOf(t, s.Leaf("both", testcerts.Options{Names: []string{"n1", "10.1.2.3"}}))
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "n1", "10.1.2.3"} {
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if err := verify(both, name, now, u); err != nil {
				t.Errorf("both, %s, usage %v: %v", name, u, err)
			}
		}
	}
	if !slices.ContainsFunc(both.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.ParseIP("10.1.2.3")) }) {
		t.Errorf("10.1.2.3 is not an IP SAN: %v", both.IPAddresses)
	}

	client := leafOf(t, s.Leaf("client", testcerts.Options{Usage: testcerts.Client}))
	if verify(client, "", now, x509.ExtKeyUsageServerAuth) == nil || verify(client, "", now, x509.ExtKeyUsageClientAuth) != nil {
		t.Error("a Client certificate is not for client use only")
	}
	server := leafOf(t, s.Leaf("server", testcerts.Options{Usage: testcerts.Server}))
	if verify(server, "", now, x509.ExtKeyUsageClientAuth) == nil || verify(server, "", now, x509.ExtKeyUsageServerAuth) != nil {
		t.Error("a Server certificate is not for server use only")
	}

	wrong := leafOf(t, s.Leaf("wrong", testcerts.Options{WrongHost: true, Names: []string{"n1"}}))
	for _, name := range []string{"127.0.0.1", "localhost", "n1"} {
		if verify(wrong, name, now, x509.ExtKeyUsageServerAuth) == nil {
			t.Errorf("a WrongHost certificate is valid for %s", name)
		}
	}
	if err := verify(wrong, testcerts.WrongHostName, now, x509.ExtKeyUsageServerAuth); err != nil {
		t.Error(err)
	}

	expired := leafOf(t, s.Leaf("expired", testcerts.Options{Expired: true}))
	if verify(expired, "", now, x509.ExtKeyUsageServerAuth) == nil || verify(expired, "", now.Add(-36*time.Hour), x509.ExtKeyUsageServerAuth) != nil {
		t.Error("Expired: not expired now, or never valid")
	}
	future := leafOf(t, s.Leaf("future", testcerts.Options{NotYetValid: true}))
	if verify(future, "", now, x509.ExtKeyUsageServerAuth) == nil || verify(future, "", now.Add(36*time.Hour), x509.ExtKeyUsageServerAuth) != nil {
		t.Error("NotYetValid: valid now, or never valid")
	}
	other := s.Leaf("other", testcerts.Options{OtherCA: true})
	if other.CA != s.CAFile || verify(leafOf(t, other), "", now, x509.ExtKeyUsageServerAuth) == nil {
		t.Error("an OtherCA certificate chains to the set's CA")
	}
	long := leafOf(t, s.Leaf("long", testcerts.Options{Validity: 400 * 24 * time.Hour}))
	if time.Until(long.NotAfter) < 399*24*time.Hour {
		t.Errorf("Validity ignored: NotAfter %v", long.NotAfter)
	}
}

func TestCARoundTrip(t *testing.T) {
	dir := t.TempDir()
	ca, err := testcerts.NewCA("x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := ca.WriteCA(crt, key); err != nil {
		t.Fatal(err)
	}
	back, err := testcerts.LoadCA(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := back.IssueFiles(dir, "leaf", testcerts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leafOf(t, p).Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Fatalf("a leaf signed by the reloaded CA: %v", err)
	}
	other, _ := testcerts.NewCA("y", time.Hour)
	if err := other.WriteCA(filepath.Join(dir, "y.crt"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := testcerts.LoadCA(filepath.Join(dir, "y.crt"), key); err == nil {
		t.Fatal("LoadCA accepted a key of another CA")
	}
}

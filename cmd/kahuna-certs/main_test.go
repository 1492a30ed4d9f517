package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if rc := run(args, &out, &errOut); rc != 0 {
		t.Fatalf("kahuna-certs %v: exit %d: %s", args, rc, errOut.String())
	}
	return out.String()
}

func load(t *testing.T, dir, name string) *tlsconfig.Reloader {
	t.Helper()
	r, err := tlsconfig.New(tlsconfig.Files{
		Cert: filepath.Join(dir, name+".crt"),
		Key:  filepath.Join(dir, name+".key"),
		CA:   filepath.Join(dir, "ca.crt"),
	})
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return r
}

// handshake connects a client to a server over loopback and round-trips a
// byte; it returns the server certificate's common name, or the error.
func handshake(t *testing.T, srv, cli *tls.Config) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.CopyN(c, c, 1)
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cli)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{1}); err != nil {
		return "", err
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// checkCerts loads what was made in dir and completes the handshakes a
// cluster needs.
func checkCerts(t *testing.T, dir string, nodes ...string) {
	t.Helper()
	rs := map[string]*tlsconfig.Reloader{}
	for _, n := range append(nodes, cliName) {
		rs[n] = load(t, dir, n)
		info, err := os.Stat(filepath.Join(dir, n+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s.key has mode %o, want 600", n, perm)
		}
	}
	for _, n := range nodes {
		leaf := rs[n].Leaf()
		if !slices.Contains(leaf.DNSNames, n) || !slices.Contains(leaf.DNSNames, "localhost") ||
			!slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
			t.Errorf("%s: SANs %v %v, want %s, localhost and 127.0.0.1", n, leaf.DNSNames, leaf.IPAddresses, n)
		}
	}
	// Mutual TLS on the internal port, both ways.
	a, b := rs[nodes[0]], rs[nodes[len(nodes)-1]]
	if cn, err := handshake(t, a.PeerServerConfig(), b.PeerClientConfig()); err != nil || cn != nodes[0] {
		t.Fatalf("peer handshake: %q, %v", cn, err)
	}
	if cn, err := handshake(t, b.PeerServerConfig(), a.PeerClientConfig()); err != nil || cn != nodes[len(nodes)-1] {
		t.Fatalf("peer handshake back: %q, %v", cn, err)
	}
	// kahuna-cli over HTTPS with a client certificate, by IP and by name.
	for _, host := range []string{"127.0.0.1", "localhost", nodes[0]} {
		if _, err := handshake(t, a.ServerConfig(true), rs[cliName].ClientConfig(host)); err != nil {
			t.Fatalf("kahuna-cli to %s: %v", host, err)
		}
	}
	// But kahuna-cli's certificate is no node certificate.
	if _, err := handshake(t, a.PeerServerConfig(), rs[cliName].PeerClientConfig()); err == nil {
		t.Fatal("kahuna-cli's certificate was accepted on the internal port")
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(data)
	}
	return m
}

func TestMakeCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out := runOK(t, dir, "n1", "n2", "--days", "30")
	for _, want := range []string{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "n2.key"), "--peer-tls-ca-file"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
	checkCerts(t, dir, "n1", "n2")
	if d := time.Until(load(t, dir, "n1").Leaf().NotAfter); d > 31*24*time.Hour || d < 29*24*time.Hour {
		t.Errorf("--days 30 gave a certificate valid for %v", d)
	}
}

func TestMakeCertsIdempotent(t *testing.T) {
	dir := t.TempDir()
	runOK(t, dir)
	first := readAll(t, dir)
	if len(first) != 10 { // CA, n1..n3, kahuna-cli: a .crt and a .key each
		t.Fatalf("made %d files, want 10", len(first))
	}
	runOK(t, dir)
	if !maps.Equal(first, readAll(t, dir)) {
		t.Fatal("a second run changed files")
	}
	// A new node is added, signed by the same CA; nothing else changes.
	out := runOK(t, dir, "n1", "n2", "n3", "n4")
	now := readAll(t, dir)
	if !strings.Contains(out, "n4") || now["n4.crt"] == "" {
		t.Fatalf("n4 not made:\n%s", out)
	}
	delete(now, "n4.crt")
	delete(now, "n4.key")
	if !maps.Equal(first, now) {
		t.Fatal("adding n4 changed other files")
	}
	checkCerts(t, dir, "n1", "n4")

	// --force replaces the CA.
	runOK(t, dir, "--force", "n1", "n2")
	if after := readAll(t, dir); after["ca.crt"] == first["ca.crt"] || after["n1.crt"] == first["n1.crt"] {
		t.Fatal("--force did not make a new CA and certificates")
	}
	checkCerts(t, dir, "n1", "n2")
}

func TestMakeCertsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"CA without key", func(dir string) { os.Remove(filepath.Join(dir, "ca.key")) }, "ca.key"},
		{"garbage CA", func(dir string) { os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("x"), 0o600) }, "cannot be used"},
		{"node cert from another CA", func(dir string) {
			other := filepath.Join(filepath.Dir(dir), "other")
			var buf bytes.Buffer
			if run([]string{other, "n1"}, &buf, &buf) != 0 {
				panic(buf.String())
			}
			for _, f := range []string{"n1.crt", "n1.key"} {
				data, _ := os.ReadFile(filepath.Join(other, f))
				os.WriteFile(filepath.Join(dir, f), data, 0o600)
			}
		}, "not signed by the CA"},
		{"key without cert", func(dir string) { os.Remove(filepath.Join(dir, "n2.crt")) }, "only one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			runOK(t, dir)
			tc.setup(dir)
			before := readAll(t, dir)
			var out, errOut bytes.Buffer
			if rc := run([]string{dir}, &out, &errOut); rc != 1 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", rc, errOut.String(), tc.want)
			}
			if !maps.Equal(before, readAll(t, dir)) {
				t.Fatal("a refused run changed files")
			}
		})
	}
	var out bytes.Buffer
	for _, args := range [][]string{{}, {"d", "bad/name"}, {"d", "n1", "n1"}, {"d", "ca"}, {"--days", "0", "d"}} {
		if rc := run(args, &out, &out); rc != 2 {
			t.Errorf("run %q: exit %d, want 2 (usage)", args, rc)
		}
	}
}

// TestMakeCertsScript runs cluster/make-certs.sh as a user does, with a
// directory relative to the caller's working directory.
func TestMakeCertsScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("../../cluster/make-certs.sh")
	if err != nil {
		t.Fatal(err)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cwd := t.TempDir()
	cmd := exec.Command(bash, script, "certs", "alpha", "beta")
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GO="+goCmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	dir := filepath.Join(cwd, "certs")
	if !strings.Contains(string(out), filepath.Join(dir, "alpha.crt")) {
		t.Fatalf("output does not say where alpha.crt is:\n%s", out)
	}
	checkCerts(t, dir, "alpha", "beta")

	// A bad run's exit code comes through.
	cmd = exec.Command(bash, script, "certs", "bad/name")
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GO="+goCmd)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("make-certs.sh with a bad node name succeeded:\n%s", out)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("make-certs.sh with a bad node name: %v, want exit 2", err)
	}
}

package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/internal/testutil"
	"github.com/kahuna-go/kahuna/pkg/client"
	"github.com/kahuna-go/kahuna/pkg/transport"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// gossipKey writes a fresh base64 gossip key and returns its path.
func gossipKey(t *testing.T, dir, name string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecureClusterKeepsIntrudersOut forms a cluster with mutual TLS on
// the internal port, encrypted gossip and tokens, then lets intruders try:
// a process speaking the mux header without TLS, one with a certificate of
// another CA, a kahunad with the gossip key but a foreign certificate that
// asks to join, and a kahunad with another gossip key. Each is refused and
// logged; the cluster keeps serving and its configuration is unchanged.
func TestSecureClusterKeepsIntrudersOut(t *testing.T) {
	t.Parallel()
	certs := testcerts.NewSet(t)
	dir := t.TempDir()
	key := gossipKey(t, dir, "gossip.key")
	auth := authFile(t, dir, `{"name":"root","token":"admin-secret","role":"admin"}`)
	secure := func(name string) []string {
		p := certs.Leaf(name, testcerts.Options{})
		return []string{"--peer-tls-cert-file", p.Cert, "--peer-tls-key-file", p.Key, "--peer-tls-ca-file", p.CA,
			"--gossip-key-file", key, "--auth-file", auth}
	}
	c := &procCluster{t: t}
	var joins []string
	for i := range 3 {
		n := testutil.NewNode(t, kahunadBin)
		c.nodes = append(c.nodes, n)
		c.ids = append(c.ids, fmt.Sprintf("p%d", i+1))
		joins = append(joins, n.GossipAddr)
	}
	for i, n := range c.nodes {
		n.Args = append([]string{"--node-id", c.ids[i], "--bootstrap-expect", "3", "--join", strings.Join(joins, ",")}, secure(c.ids[i])...)
		c.procs = append(c.procs, n.Start(t))
	}
	for _, p := range c.procs {
		if err := p.WaitReady(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	admin := func(n *testutil.Node) *client.Client {
		cl, err := client.New(client.Config{Endpoints: []string{"http://" + n.HTTPAddr}, Token: "admin-secret", NoLeaderRouting: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	// Requests through every node: two of three are forwarded over the
	// mutual-TLS internal port.
	for i, n := range c.nodes {
		for j := range 6 {
			if _, err := admin(n).TryLock(ctxT(t), fmt.Sprintf("secure/%d-%d", i, j)); err != nil {
				t.Fatalf("try-lock through %s: %v", c.ids[i], err)
			}
		}
	}

	target := c.nodes[0].RaftAddr
	// 1. Plain TCP speaking the mux header for forwarding.
	conn, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := transport.Header{Kind: transport.KindForward}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(hdr)
	conn.Write([]byte{0, 0, 0, 8, 2, 1, 1, 1, 1, 0, 0, 0})
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("a plain-TCP intruder got %d bytes back from the internal port", n)
	}
	conn.Close()
	// 2. TLS with a certificate from another CA.
	foreign := certs.Leaf("intruder", testcerts.Options{OtherCA: true})
	cert, err := tls.LoadX509KeyPair(foreign.Cert, foreign.Key)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", target, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err == nil {
		tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		tc.Write(hdr[:])
		if _, err = tc.Read(make([]byte, 1)); err == nil {
			t.Error("an intruder with a foreign certificate completed a session on the internal port")
		}
		tc.Close()
	}
	if !strings.Contains(c.procs[0].Output(), "refused a connection on the internal port") {
		t.Errorf("the refusals are not logged:\n%s", c.procs[0].Output())
	}

	// 3. A kahunad with the gossip key and a foreign certificate asks to
	// join: gossip lets it in, the internal port does not, so it is never
	// added to any partition.
	bad := testutil.NewNode(t, kahunadBin)
	badProc := bad.Start(t, "--node-id", "intruder", "--join", c.nodes[0].GossipAddr,
		"--peer-tls-cert-file", foreign.Cert, "--peer-tls-key-file", foreign.Key, "--peer-tls-ca-file", foreign.CA,
		"--gossip-key-file", key)
	// 4. A kahunad with another gossip key cannot even be seen.
	stranger := testutil.NewNode(t, kahunadBin)
	strangerProc := stranger.Start(t, "--node-id", "stranger", "--join", c.nodes[0].GossipAddr,
		"--gossip-key-file", gossipKey(t, dir, "other.key"), "--join-timeout", "3s")
	time.Sleep(5 * time.Second)
	st, err := admin(c.nodes[1]).ClusterStatus(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Partitions {
		if fmt.Sprint(p.Voters) != "[p1 p2 p3]" || len(p.NonVoters) > 0 {
			t.Errorf("partition %d has voters %v and non-voters %v after the intruders", p.ID, p.Voters, p.NonVoters)
		}
	}
	for _, n := range st.Nodes {
		if n.ID == "stranger" {
			t.Errorf("a node with another gossip key shows up in the cluster: %+v", n)
		}
		if n.ID == "intruder" && n.Role != wire.RoleJoining {
			t.Errorf("the intruder has role %q, want joining (never added)", n.Role)
		}
	}
	if code, body, _ := badProc.Client().Get(ctxT(t), wire.PathReadyz); code != 503 {
		t.Errorf("the intruder's /readyz: %d %s, want 503", code, body)
	}
	if code := strangerProc.Wait(10 * time.Second); code != 1 || !strings.Contains(strangerProc.Output(), "no formed cluster answered") {
		t.Errorf("the node with another gossip key: exit %d, want 1 with no formed cluster found:\n%s", code, strangerProc.Output())
	}
	badProc.Kill()
	// The cluster never stopped serving.
	if _, err := admin(c.nodes[2]).TryLock(ctxT(t), "secure/after"); err != nil {
		t.Errorf("try-lock after the intruders: %v", err)
	}
}

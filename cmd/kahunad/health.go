package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
	"github.com/kahuna-go/kahuna/pkg/wire"
)

// health is `kahunad health`: it asks the local node's /readyz and exits 0
// when it is ready, 1 when it is not. Container images built FROM scratch
// have no curl, so their healthcheck runs the server binary itself.
func health(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kahunad health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv(envName("http-addr"))
	if def == "" {
		def = "127.0.0.1:8082"
	}
	addr := fs.String("http-addr", def, "the node's HTTP address (default: $KAHUNA_HTTP_ADDR, else 127.0.0.1:8082)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for an answer")
	// A node serving HTTPS (KAHUNA_TLS_CERT_FILE in the environment it
	// shares with its healthcheck) is asked over HTTPS, trusting its own
	// certificate unless --cacert names the CA.
	cacert := fs.String("cacert", "", "CA certificate (PEM) to trust; asks over HTTPS (default: the node's own $KAHUNA_TLS_CERT_FILE, if set)")
	cert := fs.String("cert", "", "client certificate (PEM), for a node with --tls-client-ca-file")
	key := fs.String("key", "", "the key of --cert")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cacert == "" {
		*cacert = getenv(envName("tls-cert-file"))
	}
	target, err := probeAddr(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "kahunad health: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	scheme, hc := "http://", http.DefaultClient
	if *cacert != "" {
		cfg, err := tlsconfig.Client(*cacert, *cert, *key)
		if err != nil {
			fmt.Fprintf(stderr, "kahunad health: %v\n", err)
			return 2
		}
		scheme, hc = "https://", &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+target+wire.PathReadyz, nil)
	if err != nil {
		fmt.Fprintf(stderr, "kahunad health: %v\n", err)
		return 2
	}
	resp, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kahunad health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s\n", body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// probeAddr turns a bind address into one to dial: a node listening on
// every interface is reached on loopback.
func probeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

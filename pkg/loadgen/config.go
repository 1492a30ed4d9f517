package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/kahuna-go/kahuna/pkg/wire"
)

// Config describes one load run against one durability.
type Config struct {
	Endpoints  []string        // base URLs, e.g. http://127.0.0.1:8082; worker i uses Endpoints[i % len(Endpoints)]
	Workers    int             // concurrent connections, each with one request in flight
	Keys       int             // size of the key space
	KeyPrefix  string          // resources are <KeyPrefix><n>, n in [0, Keys)
	Duration   time.Duration   // measured period
	Warmup     time.Duration   // load before the measured period, not counted
	Durability wire.Durability // lock namespace
	ExpiresMs  int64           // lease of each try-lock
	Seed       uint64          // worker i draws keys from a source seeded with Seed and i
	Owner      string          // owner prefix, the worker index is appended; empty picks one per process
	Timeout    time.Duration   // per request and per dial; zero means 10 s
	// RouteToLeader sends each key's requests to the node leading its
	// partition (read from GET /v1/cluster/status, refreshed every
	// second), as a leader-aware client does, instead of the worker's
	// endpoint, so that no node forwards them.
	RouteToLeader bool
	// Retry makes each operation (a try-lock, or the unlock after a
	// grant) behave like a client that retries: an attempt answered 101
	// (MustRetry), with a reply without a type, or not at all (a transport
	// error) is sent again, to the next endpoint, with a short jittered
	// backoff once every endpoint has been tried, until Retry after the
	// operation's first attempt. An operation still without a final answer
	// then counts as failed. Zero sends every request once.
	Retry time.Duration
	// TLS is the client side of https:// endpoints: the CAs to trust
	// (RootCAs; nil trusts the system roots) and a certificate for servers
	// that ask for one. Every connection does one handshake and is then
	// kept alive for the whole run; sessions are cached per endpoint in
	// TLS.ClientSessionCache (a cache of the run's own when nil), so a
	// connection dialed again, or by a later run with the same config,
	// resumes. ServerName defaults to each endpoint's host. Unused by
	// http:// endpoints.
	TLS *tls.Config
	// Token is sent as "Authorization: Bearer <Token>" with every request,
	// for a server started with --auth-file. Empty: none.
	Token string
}

// DefaultConfig returns the load tool's defaults.
func DefaultConfig() Config {
	return Config{
		Endpoints:  []string{"http://127.0.0.1:8082"},
		Workers:    64,
		Keys:       10000,
		KeyPrefix:  "bench-",
		Duration:   10 * time.Second,
		Warmup:     2 * time.Second,
		Durability: wire.Persistent,
		ExpiresMs:  10000,
		Seed:       1,
		Timeout:    defaultTimeout,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case len(c.Endpoints) == 0:
		return errors.New("no endpoint given")
	case c.Workers < 1:
		return errors.New("workers must be at least 1")
	case c.Workers < len(c.Endpoints):
		// An endpoint without a worker would get no load at all, which a
		// cluster benchmark must not pass off as driving every node.
		return fmt.Errorf("workers (%d) must be at least the number of endpoints (%d)", c.Workers, len(c.Endpoints))
	case c.Keys < 1:
		return errors.New("keys must be at least 1")
	case c.Duration <= 0:
		return errors.New("duration must be positive")
	case c.Warmup < 0:
		return errors.New("warmup must not be negative")
	case c.Retry < 0:
		return errors.New("retry must not be negative")
	case c.ExpiresMs < wire.MinExpiresMs || c.ExpiresMs > wire.MaxExpiresMs:
		return fmt.Errorf("expires-ms must be in %d…%d", wire.MinExpiresMs, wire.MaxExpiresMs)
	case c.Durability != wire.Persistent && c.Durability != wire.Ephemeral:
		return fmt.Errorf("unknown durability %d", c.Durability)
	}
	if err := ValidToken(c.Token); err != nil {
		return err
	}
	for i, e := range c.Endpoints {
		if _, _, err := ParseEndpoint(e); err != nil {
			return entryError(err, i, len(c.Endpoints))
		}
	}
	return nil
}

// SplitEndpoints parses a comma-separated list of base URLs, such as the
// -endpoint flag takes. Blanks around entries and trailing slashes are
// dropped; every entry must pass ParseEndpoint, and the error names the
// first that does not. Duplicates are kept: listing a node twice gives it
// twice the workers.
func SplitEndpoints(list string) ([]string, error) {
	parts := strings.Split(list, ",")
	endpoints := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			if len(parts) == 1 {
				return nil, errors.New("no endpoint given")
			}
			return nil, entryError(errors.New("empty endpoint"), i, len(parts))
		}
		base := strings.TrimRight(p, "/")
		if _, _, err := ParseEndpoint(base); err != nil {
			if _, _, e := ParseEndpoint(p); e != nil {
				err = e // names the entry as it was written
			}
			return nil, entryError(err, i, len(parts))
		}
		endpoints = append(endpoints, base)
	}
	return endpoints, nil
}

// entryError says which entry of a list err is about, when there are several.
func entryError(err error, i, n int) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("%w (entry %d of %d)", err, i+1, n)
}

// ParseEndpoint turns a base URL, http:// or https://, into the address to
// dial and the Host header to send.
func ParseEndpoint(endpoint string) (addr, host string, err error) {
	e, err := parseEndpoint(endpoint)
	return e.addr, e.host, err
}

// endpoint is a parsed base URL.
type endpoint struct {
	addr     string // host:port to dial
	host     string // Host header
	hostname string // host without port or brackets: the TLS server name
	tls      bool   // https
}

func parseEndpoint(s string) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	port := "80"
	switch u.Scheme {
	case "http":
	case "https":
		port = "443"
	default:
		return endpoint{}, fmt.Errorf("endpoint %q: only http:// and https:// are supported", s)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("endpoint %q: no host", s)
	}
	if u.Path != "" && u.Path != "/" {
		return endpoint{}, fmt.Errorf("endpoint %q: a path is not supported", s)
	}
	e := endpoint{addr: u.Host, host: u.Host, hostname: u.Hostname(), tls: u.Scheme == "https"}
	if u.Port() == "" {
		e.addr = net.JoinHostPort(u.Hostname(), port)
	}
	return e, nil
}

// UsesTLS reports whether any of the endpoints is https://.
func UsesTLS(endpoints []string) bool {
	for _, s := range endpoints {
		if e, err := parseEndpoint(s); err == nil && e.tls {
			return true
		}
	}
	return false
}

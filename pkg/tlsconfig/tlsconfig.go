// Package tlsconfig builds every TLS configuration of a Kahuna node in one
// place (contract §8): HTTPS on the HTTP address, with or without client
// certificates, and mutual TLS between nodes on the internal port (Raft and
// forwarding). It loads the PEM files with errors that name the file and say
// what is wrong, and reloads them on demand (SIGHUP) without dropping
// anything.
//
// # Reloading
//
// A Reloader holds the current certificate and CA pool behind an atomic
// pointer. The configs it returns read them at every handshake
// (GetCertificate, GetClientCertificate, VerifyConnection), so after a
// successful Reload new connections get the new certificate and are verified
// against the new CA pool, while established connections carry on untouched.
// A Reload that fails keeps the previous material and returns a *FileError
// naming the file. A Reload that finds the same certificate and CA bundle
// changes nothing.
//
// Client CAs are checked in VerifyConnection against the current pool
// (ClientAuth is RequireAnyClientCert, and Go's static ClientCAs is left
// unset) rather than by swapping whole configs in GetConfigForClient: a
// config returned by GetConfigForClient would replace the one http.Server
// prepared (its ALPN protocols, for a start), so per-handshake callbacks are
// the part that keeps working when the caller clones or amends the config.
// The cost is that a server asking for a client certificate names no
// acceptable CAs in its request; clients here always present the one
// certificate they have.
//
// # Session resumption
//
// Servers keep session tickets on and clients use an LRU session cache, so a
// reconnect (a Raft connection pool refilling after a peer restart) skips the
// public-key operations. Resumed handshakes are verified again against the
// current CA pool and clock. A Reload that changes anything invalidates the
// sessions on both sides: the server stops accepting tickets issued before
// it (they are tagged with the material's generation) and the client starts
// a fresh session cache, so a renewed certificate is really presented on
// every new connection.
//
// # Verifying nodes on the internal port
//
// Nodes dial each other by their advertised internal address, which may be
// an IP, a container name or a NAT address. PeerServerConfig and
// PeerClientConfig therefore verify the chain only — no host name or IP
// check — and additionally require the other side's certificate to be a
// node certificate: one valid for both server and client authentication
// (both extended key usages, or none at all), as every node both listens and
// dials. A client-only certificate from the same CA (kahuna-cli's, made by
// cluster/make-certs.sh) is refused on the internal port.
//
// The consequence for the threat model: whoever holds the key of any node
// certificate issued by the peer CA is accepted as any node (it can join the
// Raft traffic and forward requests that the leader trusts as authorized),
// and can impersonate any node to a peer that dials it if it can also
// redirect that traffic. That is little more than what a member already is —
// every node is a voter of every partition and holds all the data — but it
// means the peer CA must be dedicated to this cluster: never use a public or
// company-wide CA that signs other certificates with both usages. There is
// no CRL or OCSP: to revoke a node certificate, issue a new CA, put both CAs
// in the CA files, reissue the nodes' certificates, reload, then drop the old
// CA and reload again.
//
// For HTTPS clients, ClientConfig verifies the server's name as usual.
package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// Reloader holds one TLS identity and CA bundle, loaded from Files, and
// builds configs that always use the current ones. It is safe for
// concurrent use.
type Reloader struct {
	files  Files
	mu     sync.Mutex // serializes Reload
	cur    atomic.Pointer[material]
	nextID uint64 // generation of the next material, under mu
}

// material is one successful load of the files.
type material struct {
	gen      uint64
	cert     *tls.Certificate // nil without Files.Cert
	pool     *x509.CertPool   // nil without Files.CA
	caRaw    []byte
	sessions tls.ClientSessionCache
}

// New loads f and returns a Reloader for it. Cert and Key must both be given
// or both be empty; CA may be empty (then ServerConfig(true) and the peer
// configs refuse every handshake and ClientConfig trusts the system roots).
func New(f Files) (*Reloader, error) {
	switch {
	case f.Cert != "" && f.Key == "":
		return nil, fmt.Errorf("%w: certificate file %s given without its key file", ErrIncomplete, f.Cert)
	case f.Cert == "" && f.Key != "":
		return nil, fmt.Errorf("%w: key file %s given without its certificate file", ErrIncomplete, f.Key)
	}
	r := &Reloader{files: f, nextID: 1}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Files are the files the Reloader reads.
func (r *Reloader) Files() Files { return r.files }

// Leaf is the current own certificate (nil without one), e.g. to log its
// subject and expiry after a reload.
func (r *Reloader) Leaf() *x509.Certificate {
	if m := r.cur.Load(); m.cert != nil {
		return m.cert.Leaf
	}
	return nil
}

// Reload reads the files again. On success new handshakes use the new
// material; on error the previous material stays in use and the error, a
// *FileError, names the file and what is wrong with it.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := &material{}
	if r.files.Cert != "" {
		cert, err := LoadKeyPair(r.files.Cert, r.files.Key)
		if err != nil {
			return err
		}
		next.cert = cert
	}
	if r.files.CA != "" {
		data, err := readPEMFile(roleCA, r.files.CA)
		if err != nil {
			return err
		}
		if next.pool, _, err = parseCAPool(r.files.CA, data); err != nil {
			return err
		}
		next.caRaw = data
	}
	if old := r.cur.Load(); old != nil && sameMaterial(old, next) {
		return nil // keep the generation: sessions stay resumable
	}
	next.gen = r.nextID
	r.nextID++
	next.sessions = tls.NewLRUClientSessionCache(0)
	r.cur.Store(next)
	return nil
}

func sameMaterial(a, b *material) bool {
	if (a.cert == nil) != (b.cert == nil) || !bytes.Equal(a.caRaw, b.caRaw) {
		return false
	}
	if a.cert == nil {
		return true
	}
	if len(a.cert.Certificate) != len(b.cert.Certificate) {
		return false
	}
	for i := range a.cert.Certificate {
		if !bytes.Equal(a.cert.Certificate[i], b.cert.Certificate[i]) {
			return false
		}
	}
	return true
}

// ServerConfig is the config of an HTTPS server (TLS 1.2 or later) that
// serves the current certificate. With requireClientCert, a client must
// present a certificate for client authentication that chains to the
// current CA pool, or the handshake fails.
func (r *Reloader) ServerConfig(requireClientCert bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return r.verify(cs.PeerCertificates, "client", "", x509.ExtKeyUsageClientAuth)
		}
	}
	r.tagSessions(cfg)
	return cfg
}

// ClientConfig is the config of an HTTPS client (TLS 1.2 or later) that
// presents the current certificate, if any, when the server asks for one.
//
// With a serverName, the server's certificate must carry it (a DNS name or
// an IP address) and chain to the current CA pool (the system roots when
// Files.CA is empty), checked at every handshake. With serverName empty the
// name is the one the dialer sets (tls.Dial, http.Transport: the host
// dialed, IP addresses included) and Go's own verification checks it
// against the CA pool current when ClientConfig was called: fine for a
// command-line client or one config per process, but a later Reload does
// not change the trusted CAs of that config.
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		ServerName:           serverName,
		GetClientCertificate: r.getClientCertificate,
		ClientSessionCache:   sessionCache{r},
	}
	if serverName == "" {
		cfg.RootCAs = r.cur.Load().pool
		return cfg
	}
	// Verification happens in VerifyConnection, against the current pool.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return r.verifyServer(cs.PeerCertificates, serverName)
	}
	return cfg
}

// PeerServerConfig is the config of the internal port: TLS 1.2 or later, the
// current certificate, and a client that must present a node certificate
// chaining to the current CA pool (see the package documentation).
func (r *Reloader) PeerServerConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		ClientAuth:     tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.verifyNode(cs.PeerCertificates, "peer client")
		},
	}
	r.tagSessions(cfg)
	return cfg
}

// PeerClientConfig is the config for dialing another node's internal port:
// TLS 1.2 or later, the current certificate presented, and a server that
// must present a node certificate chaining to the current CA pool; its host
// name or IP is not checked (see the package documentation), so the config
// needs no ServerName and works with tls.Client on a dialed connection.
func (r *Reloader) PeerClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: r.getClientCertificate,
		ClientSessionCache:   sessionCache{r},
		InsecureSkipVerify:   true, // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			return r.verifyNode(cs.PeerCertificates, "peer server")
		},
	}
}

var errNoCert = errors.New("tlsconfig: no certificate configured")

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cur.Load().cert; c != nil {
		return c, nil
	}
	return nil, errNoCert
}

func (r *Reloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := r.cur.Load().cert; c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil // none: the server decides
}

func (r *Reloader) verifyServer(certs []*x509.Certificate, name string) error {
	m := r.cur.Load()
	if len(certs) == 0 {
		return errors.New("tlsconfig: the server presented no certificate")
	}
	// A nil pool means the system roots here, and only here.
	if _, err := certs[0].Verify(verifyOptions(m.pool, certs, name, x509.ExtKeyUsageServerAuth)); err != nil {
		return fmt.Errorf("tlsconfig: server certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// verify checks certs against the current CA pool for every usage given;
// name, if not empty, must be one of the leaf's SANs.
func (r *Reloader) verify(certs []*x509.Certificate, who, name string, usages ...x509.ExtKeyUsage) error {
	m := r.cur.Load()
	if m.pool == nil {
		return fmt.Errorf("tlsconfig: no CA file configured to verify the %s certificate", who)
	}
	if len(certs) == 0 {
		return fmt.Errorf("tlsconfig: the %s presented no certificate", who)
	}
	for _, u := range usages {
		if _, err := certs[0].Verify(verifyOptions(m.pool, certs, name, u)); err != nil {
			return fmt.Errorf("tlsconfig: %s certificate %q: %w", who, certs[0].Subject.CommonName, err)
		}
	}
	return nil
}

// verifyNode requires a node certificate: both usages.
func (r *Reloader) verifyNode(certs []*x509.Certificate, who string) error {
	err := r.verify(certs, who, "", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
		return fmt.Errorf("%w (the internal port needs a node certificate, valid for both server and client authentication)", err)
	}
	return err
}

func verifyOptions(pool *x509.CertPool, certs []*x509.Certificate, name string, usage x509.ExtKeyUsage) x509.VerifyOptions {
	opts := x509.VerifyOptions{
		Roots:       pool,
		DNSName:     name,
		KeyUsages:   []x509.ExtKeyUsage{usage},
		CurrentTime: now(),
	}
	if len(certs) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	return opts
}

// tagSessions makes the server's session tickets carry the generation of the
// material and refuse tickets of an older one, so that a reload forces full
// handshakes. The callbacks use cfg's own ticket keys, also in clones of cfg
// (http.Server clones it).
func (r *Reloader) tagSessions(cfg *tls.Config) {
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, genTag(r.cur.Load().gen))
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		if n := len(ss.Extra); n == 0 || !bytes.Equal(ss.Extra[n-1], genTag(r.cur.Load().gen)) {
			return nil, nil // from before a reload: full handshake
		}
		return ss, nil
	}
}

func genTag(gen uint64) []byte {
	return strconv.AppendUint([]byte("kahuna-tls-gen:"), gen, 10)
}

// sessionCache is the client session cache of the current material, so that
// a reload starts afresh.
type sessionCache struct{ r *Reloader }

func (c sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return c.r.cur.Load().sessions.Get(key)
}

func (c sessionCache) Put(key string, cs *tls.ClientSessionState) {
	c.r.cur.Load().sessions.Put(key, cs)
}

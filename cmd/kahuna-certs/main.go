// Command kahuna-certs makes throw-away certificates for a Kahuna cluster
// (contract §8), with the Go standard library only; cluster/make-certs.sh
// runs it.
//
//	kahuna-certs [--force] [--days N] [--san NAME,...] DIR [NODE...]
//
// In DIR (created, mode 0700): a CA (ca.crt, ca.key), one certificate per
// node (NODE.crt, NODE.key; default nodes n1 n2 n3) for both server and
// client use with the SANs NODE, 127.0.0.1, ::1 and localhost (plus --san),
// and a client certificate for kahuna-cli (kahuna-cli.crt, kahuna-cli.key).
// Keys are written with mode 0600, every file atomically.
//
// It never overwrites a file without --force: with a CA already in DIR it
// signs only the certificates that are missing (running it twice changes
// nothing; naming a new node adds its certificate), and it refuses when a
// file is there that it cannot use. --force makes a new CA and reissues every
// certificate named (the old ones stop being trusted).
package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kahuna-go/kahuna/internal/testcerts"
	"github.com/kahuna-go/kahuna/pkg/tlsconfig"
)

const (
	caValidity = 10 * 365 * 24 * time.Hour
	cliName    = "kahuna-cli"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: kahuna-certs [--force] [--days N] [--san NAME,...] DIR [NODE...]

Makes a throw-away CA, one certificate per node (default: n1 n2 n3; server
and client use; SANs: the node name, 127.0.0.1, ::1, localhost and --san)
and a client certificate for kahuna-cli, in DIR. Existing files are kept:
only missing certificates are signed, with the CA already in DIR. --force
makes a new CA and reissues every certificate named.
`

var nodeName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

type options struct {
	force bool
	days  int
	sans  []string
	dir   string
	nodes []string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var san string
	fs := flag.NewFlagSet("kahuna-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.BoolVar(&o.force, "force", false, "make a new CA and reissue every certificate named")
	fs.IntVar(&o.days, "days", 365, "validity of the node and client certificates, in days")
	fs.StringVar(&san, "san", "", "more SANs for every node certificate, comma separated")
	// Flags may come before or after the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) == 0 {
		fs.Usage()
		return o, errors.New("DIR is missing")
	}
	if o.days <= 0 {
		return o, fmt.Errorf("--days %d: must be positive", o.days)
	}
	for _, s := range strings.Split(san, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.sans = append(o.sans, s)
		}
	}
	o.dir, o.nodes = pos[0], pos[1:]
	if len(o.nodes) == 0 {
		o.nodes = []string{"n1", "n2", "n3"}
	}
	seen := map[string]bool{}
	for _, n := range o.nodes {
		switch {
		case !nodeName.MatchString(n):
			return o, fmt.Errorf("node name %q: use letters, digits, dots and dashes", n)
		case n == "ca" || n == cliName:
			return o, fmt.Errorf("node name %q is taken by the CA or client files", n)
		case seen[n]:
			return o, fmt.Errorf("node %q named twice", n)
		}
		seen[n] = true
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kahuna-certs: %v\n", err)
		return 2
	}
	if err := makeCerts(o, stdout); err != nil {
		fmt.Fprintf(stderr, "kahuna-certs: %v\n", err)
		return 1
	}
	return 0
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func makeCerts(o options, out io.Writer) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caCrt, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")

	var ca *testcerts.CA
	caStatus := "new"
	switch {
	case !o.force && (exists(caCrt) || exists(caKey)):
		if ca, err = testcerts.LoadCA(caCrt, caKey); err != nil {
			return fmt.Errorf("the CA in %s cannot be used (%w); --force makes a new one, and every certificate signed by the old one stops being trusted", dir, err)
		}
		caStatus = "kept"
	default:
		if ca, err = testcerts.NewCA("Kahuna cluster CA "+time.Now().UTC().Format("2006-01-02T15:04:05Z"), caValidity); err != nil {
			return err
		}
		if err := ca.WriteCA(caCrt, caKey); err != nil {
			return err
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	type leaf struct {
		name   string
		opts   testcerts.Options
		status string
	}
	validity := time.Duration(o.days) * 24 * time.Hour
	var leaves []leaf
	for _, n := range o.nodes {
		leaves = append(leaves, leaf{name: n, opts: testcerts.Options{
			Usage: testcerts.Both, Names: append([]string{n}, o.sans...), Validity: validity}})
	}
	leaves = append(leaves, leaf{name: cliName, opts: testcerts.Options{Usage: testcerts.Client, Validity: validity}})

	// Check every existing file before writing any, so that a refusal
	// leaves DIR as it was.
	for i := range leaves {
		l := &leaves[i]
		crt, key := filepath.Join(dir, l.name+".crt"), filepath.Join(dir, l.name+".key")
		if o.force || (!exists(crt) && !exists(key)) {
			l.status = "new"
			continue
		}
		if caStatus == "new" {
			return fmt.Errorf("%s or %s exists but the CA is new; --force replaces them", crt, key)
		}
		if err := checkLeaf(crt, key, roots); err != nil {
			return fmt.Errorf("%w; delete them to issue new ones, or --force to start over", err)
		}
		l.status = "kept"
	}
	for _, l := range leaves {
		if l.status == "new" {
			if _, err := ca.IssueFiles(dir, l.name, l.opts); err != nil {
				return err
			}
		}
	}

	fmt.Fprintf(out, "%-12s %-5s %s (its key %s signs more certificates: keep it private)\n", "CA", caStatus, caCrt, caKey)
	for _, l := range leaves {
		fmt.Fprintf(out, "%-12s %-5s %s %s\n", l.name, l.status,
			filepath.Join(dir, l.name+".crt"), filepath.Join(dir, l.name+".key"))
	}
	n := o.nodes[0]
	crt, key := filepath.Join(dir, n+".crt"), filepath.Join(dir, n+".key")
	fmt.Fprintf(out, "\nNode %s:\n  kahunad --tls-cert-file %s --tls-key-file %s --tls-client-ca-file %s \\\n"+
		"          --peer-tls-cert-file %s --peer-tls-key-file %s --peer-tls-ca-file %s\n",
		n, crt, key, caCrt, crt, key, caCrt)
	fmt.Fprintf(out, "kahuna-cli:\n  kahuna-cli --cacert %s --cert %s --key %s -c https://127.0.0.1:8082 ...\n",
		caCrt, filepath.Join(dir, cliName+".crt"), filepath.Join(dir, cliName+".key"))
	return nil
}

// checkLeaf checks that an existing certificate and key can be kept: both
// there, loadable by kahunad, matching, unexpired and signed by the CA.
func checkLeaf(crt, key string, roots *x509.CertPool) error {
	if !exists(crt) || !exists(key) {
		return fmt.Errorf("only one of %s and %s exists", crt, key)
	}
	kp, err := tlsconfig.LoadKeyPair(crt, key)
	if err != nil {
		return err
	}
	if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%s is not signed by the CA in the same directory: %w", crt, err)
	}
	return nil
}

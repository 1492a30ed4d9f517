// Package netlab builds a small private network of hosts on this machine
// for fault tests of real processes: one network namespace per host, all
// joined by a bridge that lives in a namespace of its own (so the host's
// firewall, Docker's included, never sees the traffic), and a link from
// the test's own namespace so it can reach every host. Between hosts it can
// cut any pair (blackhole routes). It needs
// root and iproute2; Available says whether this machine allows it.
package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// ErrUnavailable means network namespaces cannot be made here.
var ErrUnavailable = errors.New("netlab: network namespaces unavailable")

// Lab is a running network of hosts.
type Lab struct {
	prefix string // short, unique per lab: names of namespaces and links
	subnet string // "10.213.S."
	hosts  []Host

	mu  sync.Mutex
	cut map[int][]int // blackholed peers per host
}

// Host is one namespace with one address.
type Host struct {
	NS string
	IP string
}

// Available reports whether namespaces can be made (root, iproute2, a
// kernel that allows it), by making and removing one.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	name := fmt.Sprintf("nlprobe%d", os.Getpid())
	if err := run("ip", "netns", "add", name); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return run("ip", "netns", "del", name)
}

// New builds a lab of n hosts. Close removes everything it made.
func New(n int) (*Lab, error) {
	prefix := fmt.Sprintf("nl%d", os.Getpid()%100000)
	third, err := freeSubnet(os.Getpid())
	if err != nil {
		return nil, err
	}
	l := &Lab{prefix: prefix, subnet: fmt.Sprintf("10.213.%d.", third), cut: map[int][]int{}}
	sw := prefix + "sw"
	steps := [][]string{
		{"netns", "add", sw},
		{"-n", sw, "link", "add", "br0", "type", "bridge"},
		{"-n", sw, "link", "set", "br0", "up"},
		// The test's own namespace: a link into the switch.
		{"link", "add", prefix + "t", "type", "veth", "peer", "name", "up0", "netns", sw},
		{"-n", sw, "link", "set", "up0", "master", "br0", "up"},
		{"addr", "add", l.subnet + "1/24", "dev", prefix + "t"},
		{"link", "set", prefix + "t", "up"},
	}
	for i := range n {
		h := Host{NS: fmt.Sprintf("%sh%d", prefix, i), IP: fmt.Sprintf("%s%d", l.subnet, 10+i)}
		l.hosts = append(l.hosts, h)
		port := fmt.Sprintf("p%d", i)
		steps = append(steps,
			[]string{"netns", "add", h.NS},
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
			[]string{"-n", sw, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
			[]string{"-n", h.NS, "link", "set", "eth0", "up"},
			[]string{"-n", h.NS, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// freeSubnet picks a 10.213.x.0/24 no interface of this namespace uses.
func freeSubnet(seed int) (int, error) {
	out, err := exec.Command("ip", "-o", "addr").Output()
	if err != nil {
		return 0, fmt.Errorf("netlab: ip addr: %w", err)
	}
	for k := range 250 {
		third := (seed+k)%250 + 1
		if !bytes.Contains(out, []byte(fmt.Sprintf(" 10.213.%d.", third))) {
			return third, nil
		}
	}
	return 0, errors.New("netlab: no free 10.213.x.0/24")
}

// Hosts are the lab's hosts, in order.
func (l *Lab) Hosts() []Host { return l.hosts }

// Command is name with args run inside host i's namespace.
func (l *Lab) Command(i int) []string {
	return []string{"ip", "netns", "exec", l.hosts[i].NS}
}

// Cut drops traffic between every pair a, b of hosts for which cut(a, b)
// or cut(b, a) is true, and restores every other pair; nil heals all.
// The test's own namespace always reaches every host.
func (l *Lab) Cut(cut func(a, b int) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for a, h := range l.hosts {
		for _, b := range l.cut[a] {
			errs = append(errs, run("ip", "-n", h.NS, "route", "del", "blackhole", l.hosts[b].IP+"/32"))
		}
		l.cut[a] = nil
		if cut == nil {
			continue
		}
		for b := range l.hosts {
			if a != b && (cut(a, b) || cut(b, a)) {
				errs = append(errs, run("ip", "-n", h.NS, "route", "add", "blackhole", l.hosts[b].IP+"/32"))
				l.cut[a] = append(l.cut[a], b)
			}
		}
	}
	return errors.Join(errs...)
}

// Close removes the lab's namespaces and links.
func (l *Lab) Close() error {
	var errs []error
	for _, h := range l.hosts {
		errs = append(errs, quiet("ip", "netns", "del", h.NS))
	}
	errs = append(errs, quiet("ip", "link", "del", l.prefix+"t"), quiet("ip", "netns", "del", l.prefix+"sw"))
	return errors.Join(errs...)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// quiet is run for clean-up, where "already gone" is fine.
func quiet(name string, args ...string) error {
	err := run(name, args...)
	if err != nil && (strings.Contains(err.Error(), "No such file") || strings.Contains(err.Error(), "Cannot find device")) {
		return nil
	}
	return err
}

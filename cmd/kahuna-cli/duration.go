package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseDuration reads a duration the way every kahuna-cli flag and shell
// command takes one: a bare integer is milliseconds, as in the original
// Kahuna ("1500"), anything else is a Go duration ("30s", "1m30s",
// "250ms"). Negative durations are refused.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration: write milliseconds (1500) or a Go duration (1.5s, 10m)")
	}
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("%q milliseconds is too long", s)
		}
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write milliseconds (1500) or a Go duration (1.5s, 10m, 1h30m)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// isInteger reports whether s is an optionally signed run of ASCII digits.
func isInteger(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// maxLease is the longest lease the server accepts: 2^31−1 ms, about 24.8
// days.
const maxLease = 2_147_483_647 * time.Millisecond

// checkLease checks a lease (EXPIRES) against the server's limits, so that a
// typo is a usage error before anything is sent.
func checkLease(d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("%v is shorter than the minimum lease of 1ms", d)
	}
	if d > maxLease {
		return fmt.Errorf("%v is longer than the maximum lease of %v", d, maxLease)
	}
	return nil
}

// parseLease parses and checks a lease.
func parseLease(s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	return d, checkLease(d)
}

// formatDuration prints a remaining lease for people: milliseconds under a
// second, hundredths under a minute, whole seconds beyond.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default: // 1h0m5s, but 2m rather than 2m0s and 1h rather than 1h0m0s
		s := d.Round(time.Second).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
}

// durationFlag is a flag.Value that takes parseDuration's syntax.
type durationFlag struct {
	d *time.Duration
}

func (f durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

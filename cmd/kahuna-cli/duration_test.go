package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string // part of the error; empty: no error
	}{
		{in: "1500", want: 1500 * time.Millisecond},
		{in: "0", want: 0},
		{in: "+20", want: 20 * time.Millisecond},
		{in: " 250 ", want: 250 * time.Millisecond},
		{in: "30s", want: 30 * time.Second},
		{in: "10m", want: 10 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "2147483647", want: maxLease},
		{in: "", err: "empty duration"},
		{in: "  ", err: "empty duration"},
		{in: "-1", err: `"-1" is negative`},
		{in: "-5s", err: `"-5s" is negative`},
		{in: "10x", err: `"10x" is not a duration: write milliseconds (1500) or a Go duration`},
		{in: "s", err: "is not a duration"},
		{in: "1,5s", err: "is not a duration"},
		{in: "ten", err: "is not a duration"},
		{in: "99999999999999999999", err: "milliseconds is too long"},
		{in: "9223372036854776", err: "milliseconds is too long"},
	} {
		got, err := parseDuration(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		}
	}
}

func TestParseLease(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err string
	}{
		{in: "1"},
		{in: "1ms"},
		{in: "24h"},
		{in: "2147483647"},
		{in: "0", err: "shorter than the minimum lease of 1ms"},
		{in: "500us", err: "shorter than the minimum lease of 1ms"},
		{in: "2147483648", err: "longer than the maximum lease"},
		{in: "25d", err: "not a duration"},
		{in: "1000h", err: "longer than the maximum lease"},
	} {
		_, err := parseLease(tc.in)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseLease(%q): %v, want error %q", tc.in, err, tc.err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                       "0s",
		999*time.Millisecond + 7:                "999ms",
		9873 * time.Millisecond:                 "9.87s",
		59990 * time.Millisecond:                "59.99s",
		14*time.Minute + 59400*time.Millisecond: "14m59s",
		2 * time.Hour:                           "2h",
		2*time.Hour + 5*time.Second:             "2h0m5s",
		2*time.Hour + 3*time.Minute:             "2h3m",
		2 * time.Minute:                         "2m",
		90 * time.Second:                        "1m30s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

package check

import (
	"testing"

	"github.com/kahuna-go/kahuna/internal/chaos"
)

func fencing(h chaos.History) []Anomaly { return FencingTokens(h, Options{}) }

var fencingCases = []historyCase{
	{name: "tokens grow, with gaps", valid: true, h: hist(
		lock("a", 10, 0, 5).locked(3),
		lock("b", 10, 20, 25).locked(8),
		lock("c", 10, 40, 45).locked(9),
	)},
	{name: "idempotent re-lock returns the same token", valid: true, h: hist(
		lock("a", 1000, 0, 10).locked(4),
		lock("a", 1000, 20, 30).locked(4),
		extend("a", 1000, 40, 50).extended(4),
		get(60, 70).got("a", 4),
	)},
	{name: "concurrent grants may come in either token order", valid: true, h: hist(
		lock("a", 5, 0, 50).locked(7),
		lock("b", 5, 10, 60).locked(6),
	)},
	{name: "re-lock after the lease may have run out gets a new token", valid: true, h: hist(
		lock("a", 50, 0, 10).locked(1),
		lock("a", 50, 60, 70).locked(2),
	)},
	{name: "persistent and ephemeral are separate namespaces", valid: true, h: hist(
		lock("a", 10, 0, 5).locked(5),
		lock("b", 10, 20, 25).eph().locked(2),
		lock("c", 10, 30, 35).eph().locked(3),
	)},
	{name: "ephemeral re-lock after a leader change may get a new token", valid: true, h: hist(
		lock("a", 1000, 0, 10).eph().locked(1),
		lock("a", 1000, 20, 30).eph().locked(1048577),
	)},
	{name: "resources have their own tokens", valid: true, h: hist(
		lock("a", 10, 0, 5).on("x").locked(5),
		lock("b", 10, 20, 25).on("y").locked(2),
	)},

	{name: "token goes backwards", want: "token went backwards", h: hist(
		lock("a", 10, 0, 5).locked(5),
		lock("b", 10, 20, 25).locked(3),
	)},
	{name: "token goes backwards after a re-lock", want: "token went backwards", h: hist(
		lock("a", 10, 0, 5).locked(5),
		lock("b", 10, 20, 25).locked(7),
		lock("b", 10, 30, 35).locked(7),
		lock("c", 10, 40, 45).locked(6),
	)},
	{name: "ephemeral token goes backwards", want: "token went backwards", h: hist(
		lock("a", 10, 0, 5).eph().locked(1048577),
		lock("b", 10, 20, 25).eph().locked(12),
	)},
	{name: "token reused by another owner", want: "two owners", h: hist(
		lock("a", 10, 0, 5).locked(5),
		lock("b", 10, 20, 25).locked(5),
	)},
	{name: "read shows a token with another owner", want: "two owners", h: hist(
		lock("a", 1000, 0, 5).locked(5),
		get(20, 25).got("b", 5),
	)},
	{name: "ephemeral token reused by another owner", want: "two owners", h: hist(
		lock("a", 10, 0, 5).eph().locked(5),
		lock("b", 10, 20, 25).eph().locked(5),
	)},
	{name: "re-lock by the holder returns another token", want: "re-lock by the holder", h: hist(
		lock("a", 1000, 0, 10).locked(1),
		lock("a", 1000, 20, 30).locked(2),
	)},
}

func TestFencingTokensHandWritten(t *testing.T) {
	runCases(t, fencingCases, fencing)
}

package alerting

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

func TestOperators(t *testing.T) {
	for _, tc := range []struct {
		op   registryv1.Operator
		want string // Matches for 39, 40, 41 against threshold 40
	}{
		{registryv1.Operator_OPERATOR_GT, "FFT"},
		{registryv1.Operator_OPERATOR_GTE, "FTT"},
		{registryv1.Operator_OPERATOR_LT, "TFF"},
		{registryv1.Operator_OPERATOR_LTE, "TTF"},
		{registryv1.Operator_OPERATOR_EQ, "FTF"},
		{registryv1.Operator_OPERATOR_NEQ, "TFT"},
		{registryv1.Operator_OPERATOR_UNSPECIFIED, "FFF"},
	} {
		r := Rule{Operator: tc.op, Threshold: 40}
		var got strings.Builder
		for _, v := range []float64{39, 40, 41} {
			if r.Matches(v) {
				got.WriteByte('T')
			} else {
				got.WriteByte('F')
			}
		}
		if got.String() != tc.want {
			t.Errorf("%s: %s, want %s", tc.op, got.String(), tc.want)
		}
	}
	if (Rule{Operator: registryv1.Operator_OPERATOR_NEQ, Threshold: 40}).Matches(math.NaN()) != true {
		t.Error("NaN != 40 must hold")
	}
}

// run feeds readings (value at second offset) through Step and describes
// what happened: "F@3" fired at 3 s, "R@5" resolved at 5 s.
func run(r Rule, readings ...[2]float64) string {
	var s State
	var out []string
	n := 0
	newID := func() string { n++; return fmt.Sprintf("a%d", n) }
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, rd := range readings {
		var tr Transition
		s, tr = Step(r, s, rd[0], t0.Add(time.Duration(rd[1]*float64(time.Second))), newID)
		switch tr {
		case Fired:
			out = append(out, fmt.Sprintf("F%s@%g", s.AlertID, rd[1]))
		case Resolved:
			out = append(out, fmt.Sprintf("R%s@%g", s.AlertID, rd[1]))
		}
	}
	return strings.Join(out, " ")
}

func TestStep(t *testing.T) {
	hot := Rule{Operator: registryv1.Operator_OPERATOR_GT, Threshold: 40}
	held := hot
	held.Hold = 3 * time.Second
	cool := hot
	cool.Cooldown = 10 * time.Second
	for name, tc := range map[string]struct {
		rule     Rule
		readings [][2]float64
		want     string
	}{
		"no hold fires on the first match and resolves once": {hot, [][2]float64{{39, 0}, {41, 1}, {42, 2}, {39, 3}, {38, 4}}, "Fa1@1 Ra1@3"},
		"fires again after resolving":                        {hot, [][2]float64{{41, 0}, {39, 1}, {41, 2}}, "Fa1@0 Ra1@1 Fa2@2"},
		"hold: fires once the condition held long enough":    {held, [][2]float64{{41, 0}, {41, 1}, {41, 2}, {41, 3}, {41, 4}}, "Fa1@3"},
		"hold: a break restarts it":                          {held, [][2]float64{{41, 0}, {41, 2}, {39, 2.5}, {41, 3}, {41, 5}, {41, 6}}, "Fa1@6"},
		"hold: never long enough":                            {held, [][2]float64{{41, 0}, {41, 2.9}, {39, 3}}, ""},
		"cooldown: no second firing within it":               {cool, [][2]float64{{41, 0}, {39, 1}, {41, 2}, {41, 9}, {41, 10}, {39, 11}}, "Fa1@0 Ra1@1 Fa2@10 Ra2@11"},
		"late readings are ignored":                          {hot, [][2]float64{{41, 5}, {39, 4}, {41, 6}}, "Fa1@5"},
		"a late reading cannot resolve":                      {hot, [][2]float64{{41, 5}, {39, 1}}, "Fa1@5"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := run(tc.rule, tc.readings...); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

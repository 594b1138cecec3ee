package device

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	tests := []struct {
		name, in, canonical string
	}{
		{"the empty selector", "", ""},
		{"only spaces", "   ", ""},
		{"equality", "site=a", "site=a"},
		{"equality with ==", "site==a", "site=a"},
		{"inequality", "tier!=test", "tier!=test"},
		{"two requirements, sorted by key", "tier!=test,site=a", "site=a,tier!=test"},
		{"spaces around terms and operators", " site = a , tier != test ", "site=a,tier!=test"},
		{"an empty value", "site=", "site="},
		{"existence", "owner", "owner"},
		{"non-existence", "!owner", "!owner"},
		{"non-existence with a space", "! owner", "!owner"},
		{"in, values sorted and distinct", "site in (c,a,b,a)", "site in (a,b,c)"},
		{"in without spaces before the list", "site in(a)", "site in (a)"},
		{"notin with spaces in the list", "site notin ( a , b )", "site notin (a,b)"},
		{"a key named in", "in in (x)", "in in (x)"},
		{"a key named notin that exists", "notin", "notin"},
		{"keys and values with every allowed character", "a.b/c_d-E9=Z:y.x/w_v-0", "a.b/c_d-E9=Z:y.x/w_v-0"},
		{"a duplicate requirement counts once", "site=a,site=a", "site=a"},
		{"everything", "site in (a,b),tier!=test,!legacy,owner,zone notin (x)", "!legacy,owner,site in (a,b),tier!=test,zone notin (x)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tt.in, err)
			}
			if got := sel.String(); got != tt.canonical {
				t.Fatalf("ParseSelector(%q).String() = %q, want %q", tt.in, got, tt.canonical)
			}
			again, err := ParseSelector(sel.String())
			if err != nil || again.String() != sel.String() {
				t.Fatalf("the canonical form %q does not parse back: %q, %v", sel.String(), again.String(), err)
			}
		})
	}
}

func TestParseSelectorRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"a lone comma", ","},
		{"a trailing comma", "site=a,"},
		{"a leading comma", ",site=a"},
		{"two commas", "site=a,,tier=b"},
		{"a bare operator", "=a"},
		{"a bang without a key", "!"},
		{"a bang before an equality", "!site=a"},
		{"a single bang operator", "site!a"},
		{"a triple equals", "site===a"},
		{"a value holding an equals", "site=a=b"},
		{"a space inside a value", "site=a b"},
		{"a key holding a colon", "a:b=c"},
		{"a key of 64 characters", strings.Repeat("k", 64) + "=v"},
		{"a value of 257 characters", "k=" + strings.Repeat("v", 257)},
		{"in without a list", "site in"},
		{"in without parentheses", "site in a,b"},
		{"an empty in list", "site in ()"},
		{"an unclosed in list", "site in (a,b"},
		{"an empty value in a list", "site in (a,,b)"},
		{"an unknown word operator", "site within (a)"},
		{"non-ASCII", "sité=a"},
		{"a newline", "site=a\n"},
		{"65 values in a list", "k in (" + strings.Repeat("v,", 64) + "last)"},
		{"a selector longer than 4096 characters", strings.Repeat("k=v,", 1100) + "k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel, err := ParseSelector(tt.in)
			if err == nil {
				t.Fatalf("ParseSelector(%q) = %q, want an error", tt.in, sel.String())
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || ve.Violations[0].Field != "label_selector" {
				t.Fatalf("ParseSelector(%q) error = %v, want an ErrInvalid ValidationError on label_selector", tt.in, err)
			}
		})
	}
	t.Run("more than 64 distinct requirements", func(t *testing.T) {
		var terms []string
		for i := range 65 {
			terms = append(terms, "k"+strings.Repeat("x", i))
		}
		if _, err := ParseSelector(strings.Join(terms, ",")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("error = %v, want ErrInvalid", err)
		}
	})
}

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"site": "a", "tier": "prod", "empty": ""}
	tests := []struct {
		selector string
		want     bool
	}{
		{"", true},
		{"site=a", true},
		{"site=b", false},
		{"missing=a", false},
		{"site!=b", true},
		{"site!=a", false},
		{"missing!=a", true},
		{"site in (a,b)", true},
		{"site in (b,c)", false},
		{"missing in (a)", false},
		{"site notin (b,c)", true},
		{"site notin (a)", false},
		{"missing notin (a)", true},
		{"site", true},
		{"missing", false},
		{"!missing", true},
		{"!site", false},
		{"empty=", true},
		{"empty", true},
		{"missing=", false},
		{"site=a,tier!=test", true},
		{"site=a,tier=test", false},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			sel, err := ParseSelector(tt.selector)
			if err != nil {
				t.Fatal(err)
			}
			if got := sel.Matches(labels); got != tt.want {
				t.Errorf("%q.Matches(%v) = %v, want %v", tt.selector, labels, got, tt.want)
			}
		})
	}
	t.Run("the zero Selector matches no labels at all", func(t *testing.T) {
		if !(Selector{}).Matches(nil) {
			t.Fatal("zero Selector does not match nil labels")
		}
	})
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"", "site=a", "tier!=test,site=a", "site in (a,b)", "site notin (a)", "!x", "x", "a==b", " k = v ", "in in (in)", "a,b,!c", "k in ()", "=", "!", "(", "k=é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) || len(ve.Violations) == 0 || ve.Violations[0].Field != "label_selector" {
				t.Fatalf("ParseSelector(%q) error %v is not a label_selector ValidationError", s, err)
			}
			return
		}
		// The canonical form parses back to itself, and every parsed key
		// and value is one a label can hold.
		canonical := sel.String()
		again, err := ParseSelector(canonical)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canonical, s, err)
		}
		if again.String() != canonical {
			t.Fatalf("canonical form %q of %q parses to %q", canonical, s, again.String())
		}
		labels := map[string]string{}
		for _, r := range sel.Requirements {
			if !ValidKey(r.Key) {
				t.Fatalf("ParseSelector(%q) accepted the key %q", s, r.Key)
			}
			for _, v := range r.Values {
				if !ValidLabelValue(v) {
					t.Fatalf("ParseSelector(%q) accepted the value %q", s, v)
				}
				labels[r.Key] = v
			}
		}
		_ = sel.Matches(labels) // must not panic
	})
}

package device

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Limits on a label selector.
const (
	MaxSelectorLen          = 4096
	MaxSelectorRequirements = 64
	MaxSelectorValues       = 64
)

// SelectorOp is the operator of one selector requirement.
type SelectorOp string

// Selector operators. A requirement on a key the labels do not hold is
// satisfied by NotEqual, NotIn and NotExists only (as in Kubernetes:
// `tier!=test` matches devices without a tier label).
const (
	SelEqual     SelectorOp = "="     // key=value, key==value
	SelNotEqual  SelectorOp = "!="    // key!=value
	SelIn        SelectorOp = "in"    // key in (a,b)
	SelNotIn     SelectorOp = "notin" // key notin (a,b)
	SelExists    SelectorOp = "exists"
	SelNotExists SelectorOp = "!exists"
)

// Requirement is one comma-separated term of a selector. Values holds one
// value for = and !=, one or more (sorted, distinct) for in and notin, and
// none for exists and !exists.
type Requirement struct {
	Key    string
	Op     SelectorOp
	Values []string
}

// Selector is a parsed label selector. Its zero value selects everything.
// Stores that filter in their query language (PostgreSQL) translate
// Requirements; others call Matches.
type Selector struct {
	Requirements []Requirement
}

// Empty reports whether s selects everything.
func (s Selector) Empty() bool { return len(s.Requirements) == 0 }

// Matches reports whether labels satisfy every requirement of s.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.Requirements {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// Matches reports whether labels satisfy r.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Op {
	case SelEqual:
		return ok && v == r.Values[0]
	case SelNotEqual:
		return !ok || v != r.Values[0]
	case SelIn:
		return ok && slices.Contains(r.Values, v)
	case SelNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case SelExists:
		return ok
	case SelNotExists:
		return !ok
	}
	return false
}

// String returns the canonical form of s, which ParseSelector reads back
// to an equal Selector: requirements sorted and distinct, no spaces except
// around in and notin.
func (s Selector) String() string {
	var b strings.Builder
	for i, r := range s.Requirements {
		if i > 0 {
			b.WriteByte(',')
		}
		switch r.Op {
		case SelExists:
			b.WriteString(r.Key)
		case SelNotExists:
			b.WriteString("!" + r.Key)
		case SelEqual, SelNotEqual:
			b.WriteString(r.Key + string(r.Op) + r.Values[0])
		case SelIn, SelNotIn:
			b.WriteString(r.Key + " " + string(r.Op) + " (" + strings.Join(r.Values, ",") + ")")
		}
	}
	return b.String()
}

// ParseSelector parses a label selector: comma-separated requirements, all
// of which must hold.
//
//	site=a        label site is a (== works too)
//	tier!=test    label tier is not test, or there is no tier label
//	site in (a,b) label site is a or b
//	site notin (a,b)
//	site          there is a site label
//	!site         there is no site label
//
// Spaces around terms are ignored. Keys and values use the label charsets
// (ValidKey, ValidLabelValue). The empty string selects everything. Errors
// are ValidationErrors on field "label_selector".
func ParseSelector(s string) (Selector, error) {
	if len(s) > MaxSelectorLen {
		return Selector{}, selectorError("must be at most %d characters", MaxSelectorLen)
	}
	p := selectorParser{s: s}
	var reqs []Requirement
	p.skipSpace()
	if p.done() {
		return Selector{}, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Selector{}, err
		}
		reqs = append(reqs, r)
		p.skipSpace()
		if p.done() {
			break
		}
		if !p.eat(',') {
			return Selector{}, p.errorf("expected ',' between requirements")
		}
		p.skipSpace()
	}
	slices.SortFunc(reqs, compareRequirements)
	reqs = slices.CompactFunc(reqs, func(a, b Requirement) bool { return compareRequirements(a, b) == 0 })
	if len(reqs) > MaxSelectorRequirements {
		return Selector{}, selectorError("at most %d requirements, got %d", MaxSelectorRequirements, len(reqs))
	}
	return Selector{Requirements: reqs}, nil
}

func compareRequirements(a, b Requirement) int {
	return cmp.Or(
		strings.Compare(a.Key, b.Key),
		strings.Compare(string(a.Op), string(b.Op)),
		slices.Compare(a.Values, b.Values),
	)
}

func selectorError(format string, args ...any) error {
	return InvalidField("label_selector", format, args...)
}

type selectorParser struct {
	s   string
	pos int
}

func (p *selectorParser) done() bool { return p.pos >= len(p.s) }

func (p *selectorParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.pos]
}

func (p *selectorParser) eat(c byte) bool {
	if p.peek() == c && !p.done() {
		p.pos++
		return true
	}
	return false
}

func (p *selectorParser) skipSpace() {
	for !p.done() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *selectorParser) errorf(format string, args ...any) error {
	return selectorError("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

// word reads a run of value characters (keys are checked afterwards).
func (p *selectorParser) word() string {
	start := p.pos
	for !p.done() && isValueByte(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *selectorParser) key() (string, error) {
	start := p.pos
	k := p.word()
	if k == "" {
		return "", p.errorf("expected a label key")
	}
	if !ValidKey(k) {
		p.pos = start
		return "", p.errorf("label key %q must be 1-%d characters of A-Z a-z 0-9 . _ / -", truncate(k), MaxKeyLen)
	}
	return k, nil
}

func (p *selectorParser) value() (string, error) {
	v := p.word()
	if len(v) > MaxLabelValueLen {
		return "", p.errorf("label value must be at most %d characters", MaxLabelValueLen)
	}
	return v, nil
}

func (p *selectorParser) requirement() (Requirement, error) {
	if p.eat('!') {
		p.skipSpace()
		k, err := p.key()
		if err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: k, Op: SelNotExists}, nil
	}
	k, err := p.key()
	if err != nil {
		return Requirement{}, err
	}
	p.skipSpace()
	switch {
	case p.done() || p.peek() == ',':
		return Requirement{Key: k, Op: SelExists}, nil
	case p.eat('='):
		p.eat('=')
		return p.single(k, SelEqual)
	case p.eat('!'):
		if !p.eat('=') {
			return Requirement{}, p.errorf("expected '=' after '!'")
		}
		return p.single(k, SelNotEqual)
	}
	start := p.pos
	switch op := p.word(); op {
	case "in", "notin":
		return p.set(k, SelectorOp(op))
	default:
		p.pos = start
		return Requirement{}, p.errorf("expected =, ==, !=, in or notin after key %q", k)
	}
}

func (p *selectorParser) single(k string, op SelectorOp) (Requirement, error) {
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return Requirement{}, err
	}
	return Requirement{Key: k, Op: op, Values: []string{v}}, nil
}

func (p *selectorParser) set(k string, op SelectorOp) (Requirement, error) {
	p.skipSpace()
	if !p.eat('(') {
		return Requirement{}, p.errorf("expected '(' after %s", op)
	}
	var values []string
	for {
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return Requirement{}, err
		}
		if v == "" {
			return Requirement{}, p.errorf("expected a value in the %s list", op)
		}
		if len(values) == MaxSelectorValues {
			return Requirement{}, p.errorf("at most %d values in an %s list", MaxSelectorValues, op)
		}
		values = append(values, v)
		p.skipSpace()
		if p.eat(')') {
			break
		}
		if !p.eat(',') {
			return Requirement{}, p.errorf("expected ',' or ')' in the %s list", op)
		}
	}
	slices.Sort(values)
	values = slices.Compact(values)
	return Requirement{Key: k, Op: op, Values: values}, nil
}

package device

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sensorcast/sensorcast/services/internal/room"
)

// Page tokens are base64url("p1" + 8 bytes of SHA-256 of the query's key +
// the last id returned). They are not secret and need not be: a forged
// token can only start a walk at another id of the same query. The hash
// makes a token of another query (other filters, another list method)
// fail instead of silently skipping objects.
const tokenVersion = "p1"

const tokenHashLen = 8

// EncodePageToken returns the token for the page after lastID of the query
// whose canonical key is queryKey.
func EncodePageToken(queryKey, lastID string) string {
	sum := sha256.Sum256([]byte(queryKey))
	b := make([]byte, 0, len(tokenVersion)+tokenHashLen+len(lastID))
	b = append(b, tokenVersion...)
	b = append(b, sum[:tokenHashLen]...)
	b = append(b, lastID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken returns the last id of a token made by EncodePageToken
// for the same queryKey; "" for the empty token (the first page). Any other
// token is ErrInvalid on field "page_token".
func DecodePageToken(token, queryKey string) (lastID string, err error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) <= len(tokenVersion)+tokenHashLen || string(b[:len(tokenVersion)]) != tokenVersion {
		return "", InvalidField("page_token", "is not a page token of this list")
	}
	sum := sha256.Sum256([]byte(queryKey))
	if !bytes.Equal(b[len(tokenVersion):len(tokenVersion)+tokenHashLen], sum[:tokenHashLen]) {
		return "", InvalidField("page_token", "belongs to a different query; repeat the query's filters or start over without a token")
	}
	lastID = string(b[len(tokenVersion)+tokenHashLen:])
	if !room.ValidID(lastID) {
		return "", InvalidField("page_token", "is not a page token of this list")
	}
	return lastID, nil
}

// ResolvePageSize applies the page-size rules: 0 is DefaultPageSize, more
// than MaxPageSize is MaxPageSize, negative is ErrInvalid.
func ResolvePageSize(n int) (int, error) {
	switch {
	case n < 0:
		return 0, InvalidField("page_size", "must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}

// Cursor is where a list call starts and how much it returns.
type Cursor struct {
	// Size is the resolved page size.
	Size int
	// After is the id the page starts after; "" for the first page.
	After string
	key   string
}

// Next returns the NextPageToken of a page whose last object has id lastID.
func (c Cursor) Next(lastID string) string { return EncodePageToken(c.key, lastID) }

func cursor(key string, size int, token string, vs violations) (Cursor, error) {
	n, err := ResolvePageSize(size)
	if err != nil {
		vs = append(vs, err.(*ValidationError).Violations...)
	}
	after, err := DecodePageToken(token, key)
	if err != nil {
		vs = append(vs, err.(*ValidationError).Violations...)
	}
	if err := vs.err(); err != nil {
		return Cursor{}, err
	}
	return Cursor{Size: n, After: after, key: key}, nil
}

// Key returns a canonical string of q's filters (not its page fields): two
// queries with equal keys select the same devices.
func (q DeviceQuery) Key() string {
	var b strings.Builder
	b.WriteString("devices\x00group=" + q.Group + "\x00selector=" + q.Selector.String() + "\x00enabled=")
	if q.Enabled != nil {
		b.WriteString(strconv.FormatBool(*q.Enabled))
	}
	b.WriteString("\x00name_prefix=" + q.NamePrefix)
	return b.String()
}

// Cursor validates q and returns where its page starts. ErrInvalid
// (fields "group", "name_prefix", "page_size", "page_token").
func (q DeviceQuery) Cursor() (Cursor, error) {
	var vs violations
	if q.Group != "" {
		vs.id("group", q.Group)
	}
	if !utf8.ValidString(q.NamePrefix) || utf8.RuneCountInString(q.NamePrefix) > MaxNameLen {
		vs.add("name_prefix", "must be valid UTF-8 of at most %d characters", MaxNameLen)
	}
	return cursor(q.Key(), q.PageSize, q.PageToken, vs)
}

// Matches reports whether d passes q's filters (the page fields aside).
func (q DeviceQuery) Matches(d *Device) bool {
	return (q.Group == "" || d.InGroup(q.Group)) &&
		(q.Enabled == nil || d.Enabled == *q.Enabled) &&
		strings.HasPrefix(d.Name, q.NamePrefix) &&
		q.Selector.Matches(d.Labels)
}

// Key returns the canonical key of q's filters.
func (q GroupQuery) Key() string { return "groups" }

// Cursor validates q and returns where its page starts.
func (q GroupQuery) Cursor() (Cursor, error) {
	return cursor(q.Key(), q.PageSize, q.PageToken, nil)
}

// Key returns the canonical key of q's filters.
func (q MembersQuery) Key() string { return "members\x00" + q.GroupID }

// Cursor validates q (field "group_id") and returns where its page starts.
func (q MembersQuery) Cursor() (Cursor, error) {
	var vs violations
	vs.id("group_id", q.GroupID)
	return cursor(q.Key(), q.PageSize, q.PageToken, vs)
}

// Key returns the canonical key of q's filters.
func (q RuleQuery) Key() string {
	return "rules\x00kind=" + string(q.TargetKind) + "\x00id=" + q.TargetID
}

// Cursor validates q (fields "target_kind", "target_id") and returns where
// its page starts.
func (q RuleQuery) Cursor() (Cursor, error) {
	var vs violations
	switch q.TargetKind {
	case "", TargetDevice, TargetGroup:
	default:
		vs.add("target_kind", "must be empty, %q or %q", TargetDevice, TargetGroup)
	}
	if q.TargetID != "" {
		vs.id("target_id", q.TargetID)
	}
	return cursor(q.Key(), q.PageSize, q.PageToken, vs)
}

// Matches reports whether r passes q's filters.
func (q RuleQuery) Matches(r *AlertRule) bool {
	return (q.TargetKind == "" || r.Target.Kind == q.TargetKind) &&
		(q.TargetID == "" || r.Target.ID == q.TargetID)
}

// ResolveChangesLimit applies Changes' rules to its arguments: limit 0 is
// DefaultChangesLimit, above MaxChangesLimit is MaxChangesLimit; negative
// limit or afterSeq is ErrInvalid.
func ResolveChangesLimit(afterSeq int64, limit int) (int, error) {
	var vs violations
	if afterSeq < 0 {
		vs.add("after_seq", "must not be negative")
	}
	if limit < 0 {
		vs.add("limit", "must not be negative")
	}
	if err := vs.err(); err != nil {
		return 0, err
	}
	switch {
	case limit == 0:
		return DefaultChangesLimit, nil
	case limit > MaxChangesLimit:
		return MaxChangesLimit, nil
	}
	return limit, nil
}

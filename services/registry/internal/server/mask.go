package server

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Editable fields of each resource, as update_mask paths. "*" in a mask
// stands for all of them.
var (
	deviceMaskPaths = []string{"display_name", "type", "groups", "labels", "attributes", "enabled"}
	groupMaskPaths  = []string{"display_name", "description", "labels"}
	ruleMaskPaths   = []string{"name", "device_id", "group_id", "field", "operator", "threshold", "severity", "hold", "cooldown", "enabled"}
)

// resolveMask checks an update mask against the editable paths and returns
// the paths to apply, or INVALID_ARGUMENT on field "update_mask" naming
// every bad path. Output-only fields and id are not editable.
func resolveMask(mask *fieldmaskpb.FieldMask, editable []string) ([]string, error) {
	if len(mask.GetPaths()) == 0 {
		return nil, invalidField("update_mask", fmt.Sprintf("must name the fields to update (%s), or \"*\" for all of them", strings.Join(editable, ", ")))
	}
	var (
		out []string
		bad []string
	)
	for _, p := range mask.GetPaths() {
		switch {
		case p == "*":
			out = append(out, editable...)
		case slices.Contains(editable, p):
			out = append(out, p)
		default:
			bad = append(bad, p)
		}
	}
	if len(bad) > 0 {
		quoted := make([]string, len(bad))
		for i, b := range bad {
			quoted[i] = fmt.Sprintf("%q", b)
		}
		return nil, invalidField("update_mask", fmt.Sprintf("cannot update %s: the editable fields are %s (or \"*\")", strings.Join(quoted, ", "), strings.Join(editable, ", ")))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Package ssa turns a typed API object into the generated apply
// configuration that server-side apply takes, by the JSON both share: the
// apply configurations are generated from the API types with the same field
// names, so a field the types gain is applied without a line here. What is
// applied is what the API would store: every field, zeros included, but
// for those the API omits when empty; a field the writer no longer sets is
// therefore no longer its own, and goes.
package ssa

import (
	"encoding/json"
	"fmt"
)

// From returns typed as the apply configuration AC.
func From[AC any](typed any) (*AC, error) {
	data, err := json.Marshal(typed)
	if err != nil {
		return nil, fmt.Errorf("apply configuration of %T: %w", typed, err)
	}
	out := new(AC)
	if err := json.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("apply configuration of %T: %w", typed, err)
	}
	return out, nil
}

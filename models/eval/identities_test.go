package eval

import (
	"reflect"
	"strings"
	"testing"
)

func TestAllPairs(t *testing.T) {
	items := []Labelled{{File: "c", Identity: "bob"}, {File: "a", Identity: "ann"}, {File: "b", Identity: "ann"}}
	listed := []Pair{{X: "c", Y: "b", NearDup: true}, {X: "a", Y: "b", Same: true}}
	got := AllPairs(items, listed)
	want := []Pair{
		{X: "a", Y: "b", Same: true},
		{X: "a", Y: "c"},
		{X: "b", Y: "c", NearDup: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if n := len(AllPairs(make([]Labelled, 40), nil)); n != 40*39/2 {
		t.Errorf("40 images give %d pairs, want 780", n)
	}
}

func TestIdentitiesFromPairs(t *testing.T) {
	pairs := []Pair{
		{X: "b", Y: "c", Same: true},
		{X: "c", Y: "a", Same: true},
		{X: "a", Y: "d"},
		{X: "e", Y: "f"},
	}
	got, err := IdentitiesFromPairs(pairs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Labelled{
		{File: "a", Identity: "group:a"}, {File: "b", Identity: "group:a"}, {File: "c", Identity: "group:a"},
		{File: "d", Identity: "group:d"}, {File: "e", Identity: "group:e"}, {File: "f", Identity: "group:f"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	bad := append(pairs, Pair{X: "b", Y: "a", Line: 9})
	_, err = IdentitiesFromPairs(bad)
	if err == nil || !strings.Contains(err.Error(), "line 9: b and a are listed as different people") {
		t.Errorf("contradiction: error = %v", err)
	}
}

package policies_test

import (
	"slices"
	"testing"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
)

func TestFieldCatalogue(t *testing.T) {
	want := []string{"id", "username", "firstName", "lastName", "email", "phone", "bio", "roles", "expertise",
		"minutePrice", "profilePhotoUrl", "photos", "liveStream", "status", "createdAt", "updatedAt"}
	if got := policies.FieldNames(); !slices.Equal(got, want) {
		t.Fatalf("catalogue %v", got)
	}
	for _, name := range want {
		f, ok := policies.ParseField(name)
		if !ok || f.String() != name {
			t.Fatalf("ParseField(%q) = %v, %v", name, f, ok)
		}
	}
	if _, ok := policies.ParseField("Email"); ok {
		t.Fatal("field names are case-sensitive")
	}
}

func TestFieldSet(t *testing.T) {
	s := policies.NewFieldSet(policies.FieldID, policies.FieldEmail, policies.FieldUpdatedAt)
	if !s.Has(policies.FieldEmail) || s.Has(policies.FieldPhone) || s.Has(policies.Field(99)) {
		t.Fatal("Has")
	}
	if got := s.Names(); !slices.Equal(got, []string{"id", "email", "updatedAt"}) {
		t.Fatalf("Names %v", got)
	}
	if got := s.Class(); got != "8011" {
		t.Fatalf("Class %q", got)
	}
	if policies.NewFieldSet().Class() != "0000" {
		t.Fatal("empty class")
	}
}

func TestDefaultViewsAndClasses(t *testing.T) {
	set := compile(t, "")
	public := []string{"id", "username", "firstName", "lastName", "expertise", "minutePrice", "profilePhotoUrl", "liveStream"}
	self := []string{"id", "username", "firstName", "lastName", "email", "phone", "bio", "expertise", "minutePrice", "profilePhotoUrl", "photos", "liveStream", "createdAt"}
	for p := clientctx.PlatformWeb; p <= clientctx.PlatformUnknown; p++ {
		pol := set.For(p)
		if got := pol.Fields(policies.ViewPublic).Names(); !slices.Equal(got, public) {
			t.Errorf("%s public %v", p, got)
		}
		if got := pol.Fields(policies.ViewSelf).Names(); !slices.Equal(got, self) {
			t.Errorf("%s self %v", p, got)
		}
		if got := pol.Fields(policies.ViewAdmin).Names(); !slices.Equal(got, policies.FieldNames()) {
			t.Errorf("%s admin %v", p, got)
		}
		for v := policies.ViewPublic; v <= policies.ViewAdmin; v++ {
			if pol.FieldClass(v) != pol.Fields(v).Class() {
				t.Errorf("%s %s class", p, v)
			}
		}
		for _, f := range []policies.Field{policies.FieldEmail, policies.FieldPhone, policies.FieldStatus} {
			if pol.Fields(policies.ViewPublic).Has(f) {
				t.Errorf("%s public shows %s", p, f)
			}
		}
	}
	web := set.For(clientctx.PlatformWeb)
	if web.FieldClass(policies.ViewPublic) == web.FieldClass(policies.ViewSelf) {
		t.Fatal("different views must have different classes")
	}
	if web.Fields(policies.View(9)) != 0 {
		t.Fatal("unknown view shows nothing")
	}
}

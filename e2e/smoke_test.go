package e2e

import (
	"net/http"
	"testing"

	"github.com/bffgate/edge/upstream/refstore"
)

// A first session: the demo user opens the app, sees their profile,
// searches, and checks a name.
func TestSmokeSession(t *testing.T) {
	store := SharedStore(t)
	idp := StartIdP(t)
	gw := StartGateway(t, GatewayOptions{Store: store, IdP: idp})
	tok := idp.UserToken(t)

	var me struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	}
	gw.Do(t, http.MethodGet, "/api/v1/users/me", Bearer(tok)).Data(t, &me)
	if me.ID != refstore.DemoUserID || me.Username != refstore.DemoUsername {
		t.Fatalf("me = %+v", me)
	}

	var page struct {
		Items []map[string]any `json:"items"`
		Total int              `json:"total"`
	}
	gw.Do(t, http.MethodGet, "/api/v2/users/search?query=sukru", Bare(tok)).Data(t, &page)
	if len(page.Items) == 0 || page.Total == 0 {
		t.Fatalf("search found nothing: %+v", page)
	}

	var check struct{ Available bool }
	gw.Do(t, http.MethodPost, "/api/v1/users/check-username", Bearer(tok), JSONBody(`{"username":"johndoe123"}`)).Data(t, &check)
	if !check.Available {
		t.Fatal("johndoe123 should be available")
	}

	gw.Do(t, http.MethodGet, "/api/v1/users/me").Failure(t, http.StatusUnauthorized, "Authentication required")
	if err := gw.Stop(t); err != nil {
		t.Fatalf("gateway exit: %v\n%s", err, gw.Logs())
	}
}

// Package contract holds the wire types of the HTTP contract between the
// gateway and the user store (docs/userstore.openapi.yaml), shared by the
// gateway's client and the reference user store so the two cannot drift.
package contract

// Paths of the user-store calls.
const (
	PathUsernameCheck = "/internal/v1/usernames/check"
	PathSearch        = "/internal/v1/users/search"
	PathUserPrefix    = "/internal/v1/users/" // + {id}
	PathLiveStreams   = "/internal/v1/live-streams/active"
)

// Headers the gateway sets on every call. Inbound copies from clients never
// pass through.
const (
	HeaderRequestID   = "X-Request-Id"
	HeaderTraceparent = "traceparent"
	HeaderUserID      = "X-User-Id"
	HeaderUserRoles   = "X-User-Roles"
	HeaderLanguage    = "X-Language"
	HeaderTimezone    = "X-Timezone"
	HeaderPlatform    = "X-Platform"
	HeaderAppVersion  = "X-App-Version"
	HeaderDeviceID    = "X-Device-Id"
)

// Limits fixed by the contract.
const (
	// MaxLiveStreamIDs is the most user ids one live-stream look-up takes.
	MaxLiveStreamIDs = 100
	// MaxSearchLimit is the largest page the store returns.
	MaxSearchLimit = 100
	// MaxSearchOffset is the largest offset a search takes: deep pages of
	// a type-ahead search are never read, and a bound keeps every search
	// cheap.
	MaxSearchOffset = 10000
	// MaxQueryBytes bounds a search's q.
	MaxQueryBytes = 200
	// MaxQueryWords bounds the distinct words of a search's q.
	MaxQueryWords = 8
)

// Error codes of non-2xx bodies.
const (
	CodeValidationFailed = "validation_failed" // 400
	CodeNotFound         = "not_found"         // 404
	CodeConflict         = "conflict"          // 409
	CodeInternal         = "internal"          // 500
	CodeUnavailable      = "unavailable"       // 503
)

// Error is the body of every non-2xx response.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// UsernameCheckRequest is the body of the username check.
type UsernameCheckRequest struct {
	Username string `json:"username"`
}

// UsernameCheckResponse answers the username check.
type UsernameCheckResponse struct {
	Username  string `json:"username"`
	Available bool   `json:"available"`
}

// SearchResponse answers a search.
type SearchResponse struct {
	Items []User `json:"items"`
	Total int    `json:"total"`
}

// Money is an amount in integer minor units; never a float.
type Money struct {
	AmountMinor int64  `json:"amountMinor"`
	Currency    string `json:"currency"`
}

// User is the user store's user. Any photo size may be missing; the keys
// of Photos are pixel sizes ("48", "96", "256").
type User struct {
	ID          string            `json:"id"`
	Username    string            `json:"username"`
	FirstName   string            `json:"firstName"`
	LastName    string            `json:"lastName"`
	Email       string            `json:"email"`
	Phone       string            `json:"phone"`
	Bio         string            `json:"bio"`
	Roles       []string          `json:"roles"`
	Expertise   []string          `json:"expertise"`
	MinutePrice Money             `json:"minutePrice"`
	Photos      map[string]string `json:"photos"`
	Status      string            `json:"status"`
	CreatedAt   string            `json:"createdAt"`
	UpdatedAt   string            `json:"updatedAt"`
}

// LiveStream is one active live stream.
type LiveStream struct {
	ID          string `json:"id"`
	UserID      string `json:"userId"`
	Title       string `json:"title"`
	StartedAt   string `json:"startedAt"`
	ViewerCount int    `json:"viewerCount"`
}

// LiveStreamsResponse answers the active live-stream look-up.
type LiveStreamsResponse struct {
	Items []LiveStream `json:"items"`
}

// IsUUID reports whether s is a user id as the contract writes one: a UUID
// in its canonical 8-4-4-4-12 hex form, either case. The gateway refuses
// any other id before calling the store; the store finds no user by it (a
// 404, like an unknown id) and refuses it in a live-stream look-up (400).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Package refstore is the project's reference user store: a real backend
// that implements the gateway ↔ user-store contract (upstream/contract,
// docs/userstore.openapi.yaml) on an embedded SQLite database. The dev stack
// runs it behind the gateway, and the gateway's tests and load tests call it
// over loopback, so it behaves like a production service: strict input
// validation, contract error bodies for every failure, concurrent readers.
//
// # Data
//
// Open creates the schema (versioned migrations) and, when the database is
// empty, seeds it deterministically from Options.Seed: the same seed and
// size always produce the same users, ids and live streams. A few fixed
// demo users always exist (DemoUserID, DemoAdminID) and DemoMissingID never
// does.
//
// # Search semantics
//
// A query is normalized with contract.NormalizeQuery (trimmed, whitespace
// collapsed, folded: case and diacritics ignored the way a Turkish reader
// expects, so "sukru" and "ŞÜKRÜ" both find "Şükrü" and "isik" finds
// "Işık"). It is then split into words at spaces, and punctuation at the
// edges of each word is dropped. A user matches when every word is a prefix
// of some token of the user's username, first name or last name. The tokens
// of a field are its folded space-separated pieces ("sukru.isik",
// "o'brien") and the letter-and-digit runs inside them ("sukru", "isik",
// "o", "brien"). So "suk", "isik", "sukru.is" and "şükrü ışık" all find
// @sukru.isik, while "ukru" does not: matching is by word prefix, not by
// substring. Prefixes are what people type in a search box that searches as
// they type, and a prefix is a range of a sorted index: every search is an
// index range scan whose cost follows the number of matches, not the size
// of the table (see searchSQL; a test asserts the query plans). A query may
// hold at most contract.MaxQueryWords distinct words, a word that prefixes
// another word of the query among them (the gateway counts them so too);
// such a word adds nothing to the match and is then dropped.
//
// Results are ordered by relevance, then by username: a user ranks higher
// the more query words equal one of its tokens exactly ("ali" ranks Ali
// Kaya above Alihan Demir), then when the username starts with the first
// word typed ("sukru" ranks @sukru.isik above @dogan.sukru). total counts
// every match; limit and offset page through them in that fixed order.
// Suspended users are returned too, with their status: the store reports,
// the gateway decides what to show.
//
// An empty query returns a random sample of limit users (offset is ignored)
// and total is the number of users.
//
// # HTTP
//
// (*Store).Handler serves the contract with net/http (routes.go lists the
// whole surface). Input is validated strictly and every failure, including
// unknown paths (404), wrong methods (405), a missing service token (401)
// and recovered panics (500), answers with a contract error body. A
// malformed user id is answered 404 not_found, like an unknown one: no
// user has it. Beside the four calls it can record what the gateway sent
// (HandlerOptions.Record) so tests can assert on propagated headers and
// call counts.
package refstore

package refstore

import (
	"net/http"

	"github.com/bffgate/edge/upstream/contract"
)

// Operations: the contract's four calls, as named in Recorder.Counts and
// RecordedRequest.Operation.
const (
	OpUsernameCheck = "usernameCheck"
	OpSearch        = "search"
	OpUser          = "user"
	OpLiveStreams   = "liveStreams"
)

// routes maps the whole HTTP surface. Every request passes, outermost
// first: recording (when on), panic recovery, the service token (when
// set), then the mux; paths and methods the mux does not know get contract
// error bodies from contractFallback.
func (h *Handler) routes() http.Handler {
	h.operation("POST "+contract.PathUsernameCheck, OpUsernameCheck, h.handleUsernameCheck())
	h.operation("GET "+contract.PathSearch, OpSearch, h.handleSearch())
	h.operation("GET "+contract.PathUserPrefix+"{id}", OpUser, h.handleUser())
	h.operation("GET "+contract.PathLiveStreams, OpLiveStreams, h.handleLiveStreams())

	if h.recorder != nil {
		h.mux.Handle("GET /_debug/requests", h.handleDebugRequests())
		h.mux.Handle("GET /_debug/counts", h.handleDebugCounts())
		h.mux.Handle("POST /_debug/reset", h.handleDebugReset())
	}

	var next http.Handler = contractFallback(h.mux)
	next = requireServiceToken(h.opts.ServiceToken, next)
	next = recoverPanics(h.logger, next)
	if h.recorder != nil {
		next = h.record(next)
	}
	return next
}

func (h *Handler) operation(pattern, op string, handler http.Handler) {
	h.mux.Handle(pattern, handler)
	h.operations[pattern] = op
}

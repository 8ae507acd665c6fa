package refstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
)

// statements are prepared once on the read pool (database/sql prepares
// each on a connection the first time it runs there): parsing the search
// SQL costs about as much as running it for a narrow query.
type statements struct {
	userByID      *sql.Stmt
	search        []*sql.Stmt // by number of query words
	count         []*sql.Stmt
	sampleSize    *sql.Stmt
	sampleBySeq   *sql.Stmt
	sampleSorted  *sql.Stmt
	liveStreams   *sql.Stmt
	usernameTaken *sql.Stmt
}

// The read statements. Those that take a list bind it as one JSON array
// and iterate it with json_each, so one prepared statement serves any list
// length and rows come back in the list's order (j.key is the array index).
// The sample size is two subqueries because apart each is cheap (a b-tree
// count, one seek to the last row) while count(*) with max() in one select
// reads every row.
const (
	userByIDSQL     = `SELECT ` + userColumns + ` FROM users u WHERE u.id = ?`
	sampleSizeSQL   = `SELECT (SELECT count(*) FROM users), (SELECT coalesce(max(seq), 0) FROM users)`
	sampleBySeqSQL  = `SELECT ` + userColumns + ` FROM json_each(?) AS j JOIN users u ON u.seq = j.value ORDER BY j.key`
	sampleSortedSQL = `SELECT ` + userColumns + ` FROM users u ORDER BY random() LIMIT ?`
	liveStreamsSQL  = `SELECT ls.id, ls.user_id, ls.title, ls.started_at, ls.viewer_count FROM json_each(?) AS j
		JOIN live_streams ls ON ls.user_id = j.value AND ls.ended_at IS NULL ORDER BY j.key`
	usernameTakenSQL = `SELECT EXISTS (SELECT 1 FROM users WHERE username_key = ?)`
)

func (st *statements) prepare(ctx context.Context, db *sql.DB) error {
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err == nil {
			*dst, err = db.PrepareContext(ctx, query)
		}
	}
	prep(&st.userByID, userByIDSQL)
	prep(&st.sampleSize, sampleSizeSQL)
	prep(&st.sampleBySeq, sampleBySeqSQL)
	prep(&st.sampleSorted, sampleSortedSQL)
	prep(&st.liveStreams, liveStreamsSQL)
	prep(&st.usernameTaken, usernameTakenSQL)
	st.search = make([]*sql.Stmt, len(searchSQL))
	st.count = make([]*sql.Stmt, len(countSQL))
	for n := 1; n < len(searchSQL); n++ {
		prep(&st.search[n], searchSQL[n])
		prep(&st.count[n], countSQL[n])
	}
	return err
}

func (st *statements) close() error {
	var errs []error
	all := slices.Concat([]*sql.Stmt{st.userByID, st.sampleSize, st.sampleBySeq, st.sampleSorted, st.liveStreams, st.usernameTaken},
		st.search, st.count)
	for _, stmt := range all {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}

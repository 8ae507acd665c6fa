package gateway

import (
	"strconv"

	"github.com/bffgate/edge/gateway/clientctx"
	"github.com/bffgate/edge/policies"
	"github.com/bffgate/edge/upstream/contract"
)

// Shaping turns the store's users into what the apps see. Field visibility
// is enforced here and only here: every response that carries a user is
// written by appendUser with the FieldSet the caller's policy allows for
// the view, so no handler can show a field its policy hides.

// photoSizes are the sizes the apps know, in output order.
var photoSizes = [...]string{"48", "96", "256"}

// jsonObject appends the members of one JSON object.
type jsonObject struct {
	b     []byte
	count int
}

func (o *jsonObject) key(name string) {
	if o.count > 0 {
		o.b = append(o.b, ',')
	}
	o.count++
	o.b = append(o.b, '"')
	o.b = append(o.b, name...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(name, v string) {
	o.key(name)
	o.b = appendJSONString(o.b, v)
}

func (o *jsonObject) strOrNull(name, v string) {
	o.key(name)
	if v == "" {
		o.b = append(o.b, "null"...)
		return
	}
	o.b = appendJSONString(o.b, v)
}

func (o *jsonObject) int(name string, v int64) {
	o.key(name)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) strings(name string, vs []string) {
	o.key(name)
	o.b = append(o.b, '[')
	for i, v := range vs {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendJSONString(o.b, v)
	}
	o.b = append(o.b, ']')
}

// appendUser appends a user as the apps see it, with only the fields in
// visible. ls is the user's active live stream or nil.
func appendUser(dst []byte, u *contract.User, ls *contract.LiveStream, visible policies.FieldSet, lang clientctx.Language) []byte {
	o := jsonObject{b: append(dst, '{')}
	if visible.Has(policies.FieldID) {
		o.str("id", u.ID)
	}
	if visible.Has(policies.FieldUsername) {
		o.str("username", u.Username)
	}
	if visible.Has(policies.FieldFirstName) {
		o.str("firstName", u.FirstName)
	}
	if visible.Has(policies.FieldLastName) {
		o.str("lastName", u.LastName)
	}
	if visible.Has(policies.FieldEmail) {
		o.strOrNull("email", u.Email)
	}
	if visible.Has(policies.FieldPhone) {
		o.strOrNull("phone", u.Phone)
	}
	if visible.Has(policies.FieldBio) {
		o.str("bio", u.Bio)
	}
	if visible.Has(policies.FieldRoles) {
		o.strings("roles", u.Roles)
	}
	if visible.Has(policies.FieldExpertise) {
		o.strings("expertise", u.Expertise)
	}
	if visible.Has(policies.FieldMinutePrice) {
		o.key("minutePrice")
		p := jsonObject{b: append(o.b, '{')}
		p.int("amountMinor", u.MinutePrice.AmountMinor)
		p.str("currency", u.MinutePrice.Currency)
		p.key("display")
		p.b = append(p.b, '"')
		p.b = appendMoneyDisplay(p.b, u.MinutePrice.AmountMinor, u.MinutePrice.Currency, lang)
		o.b = append(p.b, '"', '}')
	}
	if visible.Has(policies.FieldProfilePhotoURL) {
		o.strOrNull("profilePhotoUrl", u.Photos["96"])
	}
	if visible.Has(policies.FieldPhotos) {
		o.key("photos")
		p := jsonObject{b: append(o.b, '{')}
		for _, size := range photoSizes {
			p.strOrNull(size, u.Photos[size])
		}
		o.b = append(p.b, '}')
	}
	if visible.Has(policies.FieldLiveStream) {
		o.key("liveStream")
		if ls == nil {
			o.b = append(o.b, "null"...)
		} else {
			p := jsonObject{b: append(o.b, '{')}
			p.str("id", ls.ID)
			p.str("title", ls.Title)
			p.str("startedAt", ls.StartedAt)
			p.int("viewerCount", int64(ls.ViewerCount))
			o.b = append(p.b, '}')
		}
	}
	if visible.Has(policies.FieldStatus) {
		o.str("status", u.Status)
	}
	if visible.Has(policies.FieldCreatedAt) {
		o.str("createdAt", u.CreatedAt)
	}
	if visible.Has(policies.FieldUpdatedAt) {
		o.str("updatedAt", u.UpdatedAt)
	}
	return append(o.b, '}')
}

// appendUserPage appends a page of users: {"items":[…],"page":…,"limit":…,"total":…}.
func appendUserPage(dst []byte, users []contract.User, streams map[string]*contract.LiveStream, visible policies.FieldSet, lang clientctx.Language, page, limit, total int) []byte {
	dst = append(dst, `{"items":[`...)
	for i := range users {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendUser(dst, &users[i], streamOf(streams, users[i].ID), visible, lang)
	}
	o := jsonObject{b: append(dst, ']'), count: 1}
	o.int("page", int64(page))
	o.int("limit", int64(limit))
	o.int("total", int64(total))
	return append(o.b, '}')
}

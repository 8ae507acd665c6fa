package policies

import "strings"

// Field is one user field the gateway can show, named exactly as it appears
// in the gateway's JSON.
type Field uint8

// The field catalogue. New fields are appended at the end so that existing
// FieldSet classes keep their meaning.
const (
	FieldID Field = iota
	FieldUsername
	FieldFirstName
	FieldLastName
	FieldEmail
	FieldPhone
	FieldBio
	FieldRoles
	FieldExpertise
	FieldMinutePrice
	// FieldProfilePhotoURL is the 96 px photo.
	FieldProfilePhotoURL
	// FieldPhotos is every photo size.
	FieldPhotos
	FieldLiveStream
	FieldStatus
	FieldCreatedAt
	FieldUpdatedAt

	fieldCount
)

var fieldNames = [fieldCount]string{
	FieldID:              "id",
	FieldUsername:        "username",
	FieldFirstName:       "firstName",
	FieldLastName:        "lastName",
	FieldEmail:           "email",
	FieldPhone:           "phone",
	FieldBio:             "bio",
	FieldRoles:           "roles",
	FieldExpertise:       "expertise",
	FieldMinutePrice:     "minutePrice",
	FieldProfilePhotoURL: "profilePhotoUrl",
	FieldPhotos:          "photos",
	FieldLiveStream:      "liveStream",
	FieldStatus:          "status",
	FieldCreatedAt:       "createdAt",
	FieldUpdatedAt:       "updatedAt",
}

// String gives the field's JSON name.
func (f Field) String() string {
	if f < fieldCount {
		return fieldNames[f]
	}
	return "invalid"
}

// ParseField reads a field's JSON name, exactly (case-sensitive).
func ParseField(name string) (Field, bool) {
	for f, n := range fieldNames {
		if n == name {
			return Field(f), true
		}
	}
	return 0, false
}

// FieldNames lists the catalogue in order.
func FieldNames() []string {
	return append([]string(nil), fieldNames[:]...)
}

// FieldSet is a set of fields, one bit per field of the catalogue.
type FieldSet uint32

// allFields holds every field of the catalogue.
const allFields = FieldSet(1)<<fieldCount - 1

// NewFieldSet makes a set of the given fields.
func NewFieldSet(fields ...Field) FieldSet {
	var s FieldSet
	for _, f := range fields {
		if f < fieldCount {
			s |= 1 << f
		}
	}
	return s
}

// Has reports whether f is in the set.
func (s FieldSet) Has(f Field) bool {
	return f < fieldCount && s&(1<<f) != 0
}

// Names lists the set's fields by JSON name, in catalogue order.
func (s FieldSet) Names() []string {
	names := make([]string, 0, fieldCount)
	for f := Field(0); f < fieldCount; f++ {
		if s.Has(f) {
			names = append(names, fieldNames[f])
		}
	}
	return names
}

// String lists the set's names separated by commas, for logs and tests.
func (s FieldSet) String() string {
	return strings.Join(s.Names(), ",")
}

// classDigits is the width of a class: one hex digit per four fields.
const classDigits = (int(fieldCount) + 3) / 4

// Class is a short, stable name for the set: its mask in fixed-width hex
// (e.g. "10ff"). The read cache puts it in its keys so that responses shaped
// for different visibilities never share an entry. It allocates; Policy
// keeps the class of each of its views ready (Policy.FieldClass).
func (s FieldSet) Class() string {
	const hex = "0123456789abcdef"
	var b [classDigits]byte
	m := uint32(s & allFields)
	for i := classDigits - 1; i >= 0; i-- {
		b[i] = hex[m&0xf]
		m >>= 4
	}
	return string(b[:])
}

// View is what a response shows of a user, chosen by the route.
type View uint8

const (
	// ViewPublic is what others see of a user: search results.
	ViewPublic View = iota
	// ViewSelf is what users see of themselves: /me.
	ViewSelf
	// ViewAdmin is what admin routes show.
	ViewAdmin

	viewCount
)

var viewNames = [viewCount]string{ViewPublic: "public", ViewSelf: "self", ViewAdmin: "admin"}

// String gives the view's name as config.yaml writes it under fields:.
func (v View) String() string {
	if v < viewCount {
		return viewNames[v]
	}
	return "invalid"
}

// forbiddenPublic are the fields an app platform's public view never shows,
// whatever the configuration says.
const forbiddenPublic = FieldSet(1<<FieldEmail | 1<<FieldPhone | 1<<FieldStatus)

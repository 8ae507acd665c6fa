package refstore

// Name lists and wording of the seed data. Turkish names cover every
// letter search folding must handle (ç ğ ı İ ö ş ü, upper and lower case);
// English ones add a few other Latin diacritics and punctuation (Zoë,
// Renée, O'Brien, Smith-Jones). Some first names have two words, as many
// Turkish ones do. Bio templates take (area, years).

var turkishFirstNames = []string{
	"Şükrü", "Işık", "Çağla", "Gülşen", "İlkay", "Öykü", "Ümit", "Doğan", "Özgür", "Ilgaz",
	"İrem", "Ayşe", "Fatma", "Mehmet", "Mustafa", "Emine", "Hülya", "Gökhan", "Tuğba", "Büşra",
	"Çiğdem", "Şule", "Ömer", "Gönül", "Oğuz", "Hakan", "Selin", "Deniz", "Ebru", "Cem",
	"Barış", "Kübra", "Yağmur", "Ilgın", "Işıl", "Sıla", "Ahmet", "Elif", "Zeynep", "Burak",
	"Merve", "Tolga", "Seçil", "İbrahim", "İsmail", "Şebnem", "Çağrı", "Gülay", "Ünal", "Eşref",
	"Nilüfer", "Dilşad", "Gözde", "Uğur", "Özlem", "Aslı", "Can", "Ece", "Kıvanç", "Ali",
	"Alihan", "Ayşe Nur", "Mehmet Ali", "Fatma Gül", "Ahmet Can", "Şeyma Nur",
}

var turkishLastNames = []string{
	"Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Yıldırım", "Öztürk", "Aydın", "Özdemir",
	"Arslan", "Doğan", "Kılıç", "Aslan", "Çetin", "Kara", "Koç", "Kurt", "Özkan", "Şimşek",
	"Polat", "Öz", "Ünal", "Güneş", "Akgül", "Erdoğan", "Bulut", "Işık", "Gündoğdu", "Karagöz",
	"Çakır", "Uğurlu", "Sarıoğlu", "Ilıcak", "İnce", "İpek", "Çağlar", "Tekin", "Ağaoğlu", "Gül",
	"Küçük", "Büyükşahin", "Türkmen", "Şen", "Ölmez", "Irmak", "Ilgaz", "Eğilmez",
}

var englishFirstNames = []string{
	"John", "Emily", "Oliver", "Olivia", "James", "Amelia", "Harry", "Isla", "George", "Ava",
	"Noah", "Mia", "Jack", "Sophie", "William", "Grace", "Thomas", "Charlotte", "Henry", "Lucy",
	"Daniel", "Chloe", "Samuel", "Ella", "Zoë", "Renée", "Chloé", "Mary Jane", "Isaac", "Ivy",
}

var englishLastNames = []string{
	"Smith", "Jones", "Williams", "Brown", "Taylor", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
	"Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards", "Green", "Hall",
	"Wood", "Harris", "Clarke", "O'Brien", "O'Connor", "Smith-Jones", "Brontë", "Irving", "Ingram", "Isaacs",
}

// expertiseAreas are the tags a user may list (1 to 3 each).
var expertiseAreas = []string{
	"astrology", "career coaching", "tarot", "life coaching", "nutrition",
	"fitness", "psychology", "relationship advice", "finance", "language tutoring",
}

// Turkish wording of the areas, for Turkish bios and stream titles.
var expertiseTR = map[string]string{
	"astrology":           "astroloji",
	"career coaching":     "kariyer koçluğu",
	"tarot":               "tarot",
	"life coaching":       "yaşam koçluğu",
	"nutrition":           "beslenme",
	"fitness":             "fitness",
	"psychology":          "psikoloji",
	"relationship advice": "ilişki danışmanlığı",
	"finance":             "finans",
	"language tutoring":   "dil eğitimi",
}

var bioTemplatesTR = []string{
	"%[1]s alanında %[2]d yıllık deneyim. Sorularınızı bekliyorum.",
	"%[2]d yıldır %[1]s üzerine çalışıyorum.",
	"Merhaba! %[1]s konusunda %[2]d yıllık birikimimi paylaşıyorum.",
}

var bioTemplatesEN = []string{
	"%[2]d years of experience in %[1]s. Happy to help.",
	"Helping people with %[1]s for %[2]d years.",
	"Hi! I share what %[2]d years of %[1]s taught me.",
}

var streamTitlesTR = []string{
	"Canlı %s sohbeti",
	"Soru-cevap: %s",
	"Akşam %s yayını",
}

var streamTitlesEN = []string{
	"Live %s Q&A",
	"Ask me anything: %s",
	"Evening %s stream",
}

package forgeapp

import "testing"

func TestARI(t *testing.T) {
	t.Parallel()
	const want = "ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a"
	for _, id := range []string{
		want,
		"406d303d-0393-4ec4-ad7c-1435be94583a",
		" 406D303D-0393-4EC4-AD7C-1435BE94583A\n",
		"ari:cloud:ecosystem::app/406D303D-0393-4ec4-ad7c-1435be94583a",
	} {
		if got, ok := ARI(id); !ok || got != want {
			t.Errorf("ARI(%q) = %q, %v; want %q, true", id, got, ok, want)
		}
	}
	for _, id := range []string{
		"",
		"ari:cloud:ecosystem::app/",
		"ari:cloud:ecosystem::installation/406d303d-0393-4ec4-ad7c-1435be94583a",
		"406d303d-0393-4ec4-ad7c-1435be94583",
		"406d303d03934ec4ad7c1435be94583a",
		"ari:cloud:ecosystem::app/ari:cloud:ecosystem::app/406d303d-0393-4ec4-ad7c-1435be94583a",
		"406d303d-0393-4ec4-ad7c-1435be94583a/",
	} {
		if got, ok := ARI(id); ok {
			t.Errorf("ARI(%q) = %q, true; want false", id, got)
		}
	}
}

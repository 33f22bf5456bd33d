package servicedesk_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servicedesk-go/servicedesk"
)

// roundTrip decodes data into a T, encodes it and decodes it again: the two
// values must be equal, so no field is lost either way. normalize, when
// given, maps values that mean the same to one form first.
func roundTrip[T any](t *testing.T, data string, normalize ...func(*T)) (first T, encoded []byte) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(data), &first))
	encoded, err := json.Marshal(first)
	require.NoError(t, err)
	var second T
	require.NoError(t, json.Unmarshal(encoded, &second))
	for _, n := range normalize {
		n(&first)
		n(&second)
	}
	assert.Equal(t, first, second)
	return first, encoded
}

func TestCustomerRoundTrip(t *testing.T) {
	t.Parallel()
	data := fixture(t, "create_customer_201.json")
	cust, encoded := roundTrip[servicedesk.Customer](t, data)
	assert.Equal(t, fred(), cust)
	assert.JSONEq(t, data, string(encoded), "every documented field is modelled")
}

func TestPageRoundTrip(t *testing.T) {
	t.Parallel()
	// "_expands": [] and no _expands mean the same (the field is omitempty).
	noEmptyExpands := func(p *servicedesk.Page[servicedesk.Customer]) {
		if len(p.Expands) == 0 {
			p.Expands = nil
		}
	}
	page, _ := roundTrip(t, fixture(t, "get_customers_200.json"), noEmptyExpands)
	assert.Equal(t, []servicedesk.Customer{fred()}, page.Values)
	assert.Equal(t, 1, page.Start)
	assert.Equal(t, "https://your-domain.atlassian.net/rest/servicedeskapi/servicedesk/1/customer?start=0&limit=1", page.Links.Prev)
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	req, encoded := roundTrip[servicedesk.CreateCustomerRequest](t, `{"email":"fred@example.com","displayName":"Fred F. User"}`)
	assert.False(t, req.StrictConflictStatusCode)
	assert.JSONEq(t, `{"email":"fred@example.com","displayName":"Fred F. User"}`, string(encoded))
	strict, _ := json.Marshal(servicedesk.CreateCustomerRequest{Email: "a@b.co", DisplayName: "A", StrictConflictStatusCode: true})
	assert.JSONEq(t, `{"email":"a@b.co","displayName":"A"}`, string(strict), "the flag is a query parameter, not body")

	_, encoded = roundTrip[servicedesk.CustomerIDs](t, `{"accountIds":["a","b"],"usernames":["c"]}`)
	assert.JSONEq(t, `{"accountIds":["a","b"],"usernames":["c"]}`, string(encoded))
	onlyIDs, _ := json.Marshal(servicedesk.CustomerIDs{AccountIDs: []string{"a"}})
	assert.JSONEq(t, `{"accountIds":["a"]}`, string(onlyIDs), "empty lists are left out")
}

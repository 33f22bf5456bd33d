package redislimiter_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"
	"github.com/servicedesk-go/servicedesk"
	"github.com/servicedesk-go/servicedesk/redislimiter"
	"github.com/servicedesk-go/servicedesk/servicedesktest"
)

// Every process of a fleet that calls one Jira site makes its client with
// a limiter on the same Redis and key prefix.
func Example() {
	site := servicedesktest.NewServer() // stands for https://your-domain.atlassian.net
	defer site.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))

	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer rdb.Close()
	limiter := redislimiter.New(rdb, servicedesk.RateLimiterConfig{Cloud: true},
		redislimiter.WithKeyPrefix("servicedesk:example:"), redislimiter.WithLogger(logger))
	c, err := servicedesk.NewClient(site.URL,
		servicedesk.WithBasicAuth(servicedesktest.AdminEmail, servicedesktest.AdminToken),
		servicedesk.WithRateLimiter(limiter), servicedesk.WithLogger(logger))
	if err != nil {
		log.Fatal(err)
	}

	cust, err := c.Customers.Create(context.Background(), servicedesk.CreateCustomerRequest{
		Email: "fred@example.com", DisplayName: "Fred F. User",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cust.DisplayName)
	// Output: Fred F. User
}

// One limiter per Jira site: the prefix keeps their limits apart, in one
// Redis.
func ExampleWithKeyPrefix() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	defer rdb.Close()
	limiters := map[string]servicedesk.RateLimiter{}
	for _, site := range []string{"acme", "globex"} {
		limiters[site] = redislimiter.New(rdb, servicedesk.RateLimiterConfig{Cloud: true},
			redislimiter.WithKeyPrefix("servicedesk:"+site+":"))
	}
	fmt.Println(len(limiters), "sites")
	// Output: 2 sites
}

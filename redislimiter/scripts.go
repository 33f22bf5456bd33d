package redislimiter

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/servicedesk-go/servicedesk/internal/limits"

	"github.com/redis/go-redis/v9"
)

// The shared state of one site lives in a few keys, all under one hash tag
// ({prefix}) so that a script touching them runs on one Cluster slot:
//
//	{prefix}ep:<method> <path>      hash: an endpoint's pacing and pause
//	{prefix}global                  hash: the pause of every endpoint; Data Center's bucket (its fill n, pace, burst)
//	{prefix}flight:<method> <path>  sorted set: an endpoint's requests in flight, scored by expiry
//	{prefix}flight                  sorted set: every request in flight
//	{prefix}members                 sorted set: processes that reserved lately
//
// Every key expires: the hashes an hour after the last thing they hold
// (a pause, a reservation), the sets with their newest member.
//
// Pacing is GCRA: an endpoint's tat is the time at which its bucket would be
// full again, in microseconds of Redis's clock (TIME), so the processes'
// clocks never matter. A reservation that must wait is confirmed after the
// wait: epoch changes when reservations are void (a pause began, the rate
// fell), and a void one is made again.

// paceLua is limits.PaceBurst and limits.PaceRate in Lua, for the rules
// the scripts apply in Redis (TestPaceLuaIsLimits checks they agree).
const paceLua = `
-- pburst is limits.PaceBurst of a limit (or a pace).
local function pburst(n) return math.min(math.max(1, math.floor(0.04 * n)), 65536) end
-- prate is limits.PaceRate of a limit.
local function prate(n)
  local b = pburst(n)
  if n >= 10 then return n - b - 1 end
  return math.max(n - b, 0.5 * n, 1 / 60)
end
`

// prelude loads the state every script needs, after removing the leases of
// requests that are done and counting the answers served among them.
// KEYS: ep, global, ep flight, flight, members, then more flight sets and
// endpoint hashes. ARGV: process id, key TTL ms, lease TTL ms, the
// endpoint's starting limit, rate and burst, the number of releases and
// the releases (index in KEYS of their flight set and of their endpoint's
// hash, lease, "1" when the answer was served: a status below 400).
const prelude = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowms = math.floor(now / 1000)
local tenth = math.floor(nowms / 100)
local proc, keyttl, leasettl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function num(x) return string.format('%.17g', x) end
` + paceLua + `
-- An endpoint's answers served in the last second are counted by tenth of
-- a second, in ten fields of its hash (sv0..sv9: "tenth:count"), as the
-- governor counts them, for the whole fleet.
local function count(key)
  local f = 'sv' .. (tenth % 10)
  local v = redis.call('HGET', key, f)
  local c = 0
  if v then
    local vt, vc = string.match(v, '^(%d+):(%d+)$')
    if tonumber(vt) == tenth then c = tonumber(vc) end
  end
  redis.call('HSET', key, f, string.format('%d:%d', tenth, c + 1))
  if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, keyttl) end
end
local function served(key)
  local vs = redis.call('HMGET', key, 'sv0', 'sv1', 'sv2', 'sv3', 'sv4', 'sv5', 'sv6', 'sv7', 'sv8', 'sv9')
  local n = 0
  for i = 1, 10 do
    if vs[i] then
      local vt, vc = string.match(vs[i], '^(%d+):(%d+)$')
      if vt and tenth - tonumber(vt) < 10 then n = n + tonumber(vc) end
    end
  end
  return n
end

local argi = 8
for i = 1, tonumber(ARGV[7]) do
  redis.call('ZREM', KEYS[tonumber(ARGV[argi])], ARGV[argi + 2])
  redis.call('ZREM', KEYS[4], ARGV[argi + 2])
  if ARGV[argi + 3] == '1' then count(KEYS[tonumber(ARGV[argi + 1])]) end
  argi = argi + 4
end

local e = {}
local E = redis.call('HMGET', KEYS[1], 'n', 'rate', 'burst', 'tat', 'epoch', 'pu', 'pr', 'pw', 'cut', 'lc', 'ceil', 'src', 'ge', 'ln', 'pp', 'lu')
if E[2] then
  e.n, e.rate, e.burst, e.tat, e.epoch = tonumber(E[1]) or 0, tonumber(E[2]) or 0, tonumber(E[3]) or 1, tonumber(E[4]) or now, tonumber(E[5]) or 0
  e.pu, e.pr, e.pw, e.cut, e.lc = tonumber(E[6]) or 0, E[7] or '', E[8] or '', tonumber(E[9]) or 0, tonumber(E[10]) or 0
  e.ceil, e.src, e.ge, e.ln, e.pp = tonumber(E[11]) or 0, E[12] or '', tonumber(E[13]) or -1, tonumber(E[14]) or 0, E[15] or ''
  e.lu = tonumber(E[16]) or 0
else
  e.n, e.rate, e.burst, e.tat, e.epoch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), now, 0
  e.pu, e.pr, e.pw, e.cut, e.lc, e.ceil, e.src, e.ge, e.ln, e.pp = 0, '', '', 0, 0, e.rate, '', -1, 0, ''
  e.lu = 0
end
if e.burst < 1 then e.burst = 1 end
local efull = not E[2] -- save every field, not only tat
local G = redis.call('HMGET', KEYS[2], 'pu', 'pr', 'pw', 'rate', 'burst', 'tat', 'epoch', 'pp', 'n')
local g = {pu = tonumber(G[1]) or 0, pr = G[2] or '', pw = G[3] or '', rate = tonumber(G[4]) or 0,
  burst = tonumber(G[5]) or 1, tat = tonumber(G[6]) or now, epoch = tonumber(G[7]) or 0, pp = G[8] or '',
  n = tonumber(G[9]) or 0}
-- A pause of everything voided every endpoint's reservations: drop the debt.
if e.ge ~= g.epoch then
  e.tat, e.ge, efull = math.min(e.tat, now), g.epoch, true
end

local function ttl(until_us)
  return keyttl + math.floor(math.max(0, until_us - now) / 1000)
end
local function save_e()
  if efull then
    redis.call('HSET', KEYS[1], 'n', num(e.n), 'rate', num(e.rate), 'burst', num(e.burst), 'tat', num(e.tat),
      'epoch', num(e.epoch), 'pu', num(e.pu), 'pr', e.pr, 'pw', e.pw, 'cut', num(e.cut), 'lc', num(e.lc),
      'ceil', num(e.ceil), 'src', e.src, 'ge', num(e.ge), 'ln', num(e.ln), 'pp', e.pp, 'lu', num(e.lu))
  else
    redis.call('HSET', KEYS[1], 'tat', num(e.tat))
  end
  redis.call('PEXPIRE', KEYS[1], ttl(math.max(e.pu, e.tat)))
end
local function save_g()
  redis.call('HSET', KEYS[2], 'pu', num(g.pu), 'pr', g.pr, 'pw', g.pw, 'pp', g.pp, 'rate', num(g.rate),
    'burst', num(g.burst), 'tat', num(g.tat), 'epoch', num(g.epoch), 'n', num(g.n))
  redis.call('PEXPIRE', KEYS[2], ttl(math.max(g.pu, g.tat)))
end
local function inflight(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', nowms)
  return redis.call('ZCARD', key)
end
-- nextturn is when a bucket's next turn may be taken, at the earliest now.
local function nextturn(tat, rate, burst)
  if rate <= 0 then return now end
  return math.max(now, tat - (burst - 1) * 1000000 / rate)
end
-- book takes a bucket's turn at at, no earlier than its nextturn: the
-- new tat.
local function book(tat, rate, at)
  if rate <= 0 then return tat end
  return math.max(tat, at) + 1000000 / rate
end
-- spend drops tokens the server says are not there: at most left remain.
local function spend(tat, rate, burst, left)
  if rate <= 0 then return tat end
  local T = 1000000 / rate
  local at = math.max(tat, now)
  local excess = burst - (at - now) / T - math.max(left, 0)
  if excess >= 1 then return at + math.floor(excess) * T end
  return tat
end
-- reply: for a pause, its RateLimit-Reason, cause, policy and scope ('a':
-- every endpoint); for a pace, its policy and the requests queued ahead;
-- for a reservation, its turn (see 'back').
local function reply(code, wait, reason, cause, policy, scope, queued, fleet, turn)
  return {code, math.floor(wait), reason, cause, scope, num(e.epoch) .. ':' .. num(g.epoch),
    num(e.n), num(e.rate), e.burst, e.cut, e.ln, inflight(KEYS[3]), num(g.rate), g.burst, inflight(KEYS[4]), fleet,
    policy, queued, turn or '', num(g.n)}
end
`

// reserveScript pause-checks and reserves a request. More ARGV: "r" to
// reserve or "c" to confirm a reservation, the longest wait allowed (µs),
// the request's lease, the epoch of the reservation being confirmed, and
// "1" to count the process among the site's members (every few seconds).
var reserveScript = redis.NewScript(prelude + `
local mode, budget, lease, expect, member = ARGV[argi], tonumber(ARGV[argi + 1]), ARGV[argi + 2], ARGV[argi + 3], ARGV[argi + 4]
local fleet = -1
if member == '1' then
  redis.call('ZADD', KEYS[5], nowms + 10000, proc)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', nowms)
  redis.call('PEXPIRE', KEYS[5], 10000)
  fleet = redis.call('ZCARD', KEYS[5])
end

-- A cut rate recovers by a twentieth every 10 seconds since the last cut
-- or step up, up to what it was.
if e.cut == 1 and now - math.max(e.lc, e.lu) >= 10000000 then
  local r = e.rate * 1.05
  if e.ceil > 0 and r >= e.ceil then
    r, e.cut = e.ceil, 0
  end
  e.rate, e.burst, e.lu, efull = r, pburst(r), now, true
end

local pu, pr, pw, pp, scope = e.pu, e.pr, e.pw, e.pp, 'e'
if g.pu > pu then pu, pr, pw, pp, scope = g.pu, g.pr, g.pw, g.pp, 'a' end
if pu > now then
  save_e()
  if pu - now > budget then return reply(3, pu - now, pr, pw, pp, scope, 0, fleet) end
  return reply(2, pu - now, pr, pw, pp, scope, 0, fleet)
end

local function admit()
  redis.call('ZADD', KEYS[3], nowms + leasettl, lease)
  redis.call('PEXPIRE', KEYS[3], leasettl)
  redis.call('ZADD', KEYS[4], nowms + leasettl, lease)
  redis.call('PEXPIRE', KEYS[4], leasettl)
end
if mode == 'c' and expect == num(e.epoch) .. ':' .. num(g.epoch) then
  admit()
  save_e()
  return reply(0, 0, '', '', '', '', 0, fleet)
end

-- The request goes at the later of the two buckets' next turns, and
-- takes its turn on both then: a request the endpoint holds back must not
-- spend Data Center's turn early, for another to take it again.
local at = math.max(nextturn(e.tat, e.rate, e.burst), nextturn(g.tat, g.rate, g.burst))
local wait = at - now
local te, tg = book(e.tat, e.rate, at), book(g.tat, g.rate, at)
local queued = 0
if e.rate > 0 then queued = math.max(0, math.floor((e.tat - now) * e.rate / 1000000 + 0.5) - e.burst) end
if wait > budget then
  save_e()
  return reply(4, wait, '', '', e.src, '', queued, fleet)
end
-- The turn: each bucket's tat before and after booking, for giving it
-- back ('' for a bucket not paced).
local turn = num(e.tat) .. ':' .. num(te) .. ':'
e.tat = te
if g.rate > 0 then
  turn = turn .. num(g.tat) .. ':' .. num(tg)
  g.tat = tg
  save_g()
else
  turn = turn .. ':'
end
save_e()
if wait <= 0 then
  admit()
  return reply(0, 0, '', '', '', '', 0, fleet)
end
return reply(1, wait, '', '', e.src, '', queued, fleet, turn)
`)

// learnScript applies what answers said. More ARGV: the number of ops,
// then seven values an op (see op.args).
var learnScript = redis.NewScript(prelude + `
local edirty, gdirty = false, false
local nops = tonumber(ARGV[argi])
argi = argi + 1
for i = 1, nops do
  local k, a, b, c, s1, s2, s3 = ARGV[argi], tonumber(ARGV[argi + 1]), tonumber(ARGV[argi + 2]), tonumber(ARGV[argi + 3]), ARGV[argi + 4], ARGV[argi + 5], ARGV[argi + 6]
  argi = argi + 7
  if k == 'pa' then
    if now + a > g.pu then
      g.pu, g.pr, g.pw, g.pp, g.epoch, gdirty = now + a, s1, s2, s3, g.epoch + 1, true
    end
  elseif k == 'pe' then
    if now + a > e.pu then
      e.pu, e.pr, e.pw, e.pp, e.epoch, e.tat, edirty = now + a, s1, s2, s3, e.epoch + 1, math.min(e.tat, now), true
    end
  elseif k == 'rate' then
    if not (e.ln == 1 and e.n == a and e.cut == 0) then
      local old = e.rate
      e.n, e.rate, e.burst, e.ceil, e.cut, e.src, e.ln, edirty = a, b, c, b, 0, s1, 1, true
      -- Slower: reservations made at the old pace are void. Coming from
      -- no pace, what was sent already counts: one token, not a full bucket.
      if old <= 0 or b < old then
        e.epoch = e.epoch + 1
        e.tat = now + (c - 1) * 1000000 / b
      end
    end
  elseif k == 'spend' then
    local left = a - inflight(KEYS[3])
    local tat = spend(e.tat, e.rate, e.burst, left)
    if tat ~= e.tat then e.tat, edirty = tat, true end
  elseif k == 'cut' then
    -- A 429 that announced no limit: the pace for what the site served in
    -- the second before it (its limit, most likely), never above 90 % of
    -- the pace it had (a the pace taken when there was none, b the
    -- slowest); one cut a second.
    if now - e.lc >= 1000000 then
      local cur = e.rate
      if cur <= 0 then cur = a end
      local r = cur * 0.9
      local n = served(KEYS[1])
      if n > 0 then r = math.min(r, prate(n)) end
      r = math.max(r, b)
      if e.cut == 0 then e.ceil = e.rate end
      e.rate, e.burst, e.lc, e.cut = r, pburst(r), now, 1
      e.epoch, e.tat, edirty = e.epoch + 1, math.min(e.tat, now), true
    end
  elseif k == 'grate' then
    -- Data Center's bucket: a its fill, b and c its pace and burst. Coming
    -- from no pace, what was sent already counts: one token.
    if g.n ~= a or g.rate ~= b or g.burst ~= c then
      if g.rate <= 0 then g.tat = now + (c - 1) * 1000000 / b end
      g.n, g.rate, g.burst, gdirty = a, b, c, true
    end
  elseif k == 'gspend' then
    local left = a - inflight(KEYS[4])
    local tat = spend(g.tat, g.rate, g.burst, left)
    if tat ~= g.tat then g.tat, gdirty = tat, true end
  elseif k == 'back' then
    -- A reservation given up (s1 its epoch, s2 its turn): each bucket's
    -- turn goes back when it is the last one booked, the tail of the
    -- schedule, which restores tat exactly; one with turns booked after
    -- it is left as a gap (one turn lost, on the safe side), as the
    -- governor's pacer does. A void reservation gives nothing back.
    local eb, ea, gb, ga = string.match(s2, '^([^:]*):([^:]*):([^:]*):([^:]*)$')
    if s1 == num(e.epoch) .. ':' .. num(g.epoch) and ea then
      if ea ~= '' and num(e.tat) == ea then e.tat, edirty = tonumber(eb), true end
      if ga ~= '' and num(g.tat) == ga then g.tat, gdirty = tonumber(gb), true end
    end
  end
end
if edirty then
  efull = true
  save_e()
end
if gdirty then save_g() end
return reply(5, 0, '', '', '', '', 0, redis.call('ZCARD', KEYS[5]))
`)

// Reply codes.
const (
	codeOK           = 0 // admitted: send now
	codeWait         = 1 // reserved: wait, then confirm
	codePaused       = 2 // paused: wait, then reserve again
	codeRefusedPause = 3 // paused past the deadline
	codeRefusedPace  = 4 // paced past the deadline
	codeLearned      = 5
)

// reply is what a script answers.
type reply struct {
	code   int
	wait   time.Duration
	reason string // RateLimit-Reason of the 429 that paused
	cause  string // why it is paused
	policy string // the policy that paused, or that paces
	global bool   // the pause holds every endpoint
	queued int    // requests queued ahead of a refused one
	epoch  string
	turn   string // a reservation's turn, to give it back (see learnScript's 'back')
	st     state
}

// state is what the limiter last read of an endpoint's shared state.
type state struct {
	known    bool
	limit    float64 // the limit its pace comes from, requests a second; 0: none
	rate     float64 // its pace; 0: none
	burst    int
	cut      bool // lowered after a 429 that announced no limit
	learned  bool // the limit came from an answer
	inflight int  // the site's requests to it in flight

	globalLimit    float64 // Data Center's bucket's fill, requests a second; 0: none
	globalRate     float64 // its pace; 0: none
	globalBurst    int
	globalInflight int
	fleet          int // processes that reserved in the last 10 s; -1: not asked
}

var errReply = errors.New("redislimiter: unexpected script reply")

func parseReply(v any) (reply, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 20 {
		return reply{}, fmt.Errorf("%w: %T of %d", errReply, v, len(a))
	}
	var r reply
	var err error
	i := func(k int) int {
		n, ok := a[k].(int64)
		if !ok && err == nil {
			err = fmt.Errorf("%w: item %d is %T", errReply, k+1, a[k])
		}
		return int(n)
	}
	s := func(k int) string {
		str, ok := a[k].(string)
		if !ok && err == nil {
			err = fmt.Errorf("%w: item %d is %T", errReply, k+1, a[k])
		}
		return str
	}
	f := func(k int) float64 {
		x, perr := strconv.ParseFloat(s(k), 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: item %d: %v", errReply, k+1, perr)
		}
		return x
	}
	r.code = i(0)
	r.wait = limits.BoundWait(time.Duration(i(1)) * time.Microsecond)
	r.reason, r.cause, r.global, r.epoch = s(2), s(3), s(4) == "a", s(5)
	r.policy, r.queued, r.turn = s(16), i(17), s(18)
	r.st = state{
		known: true, limit: f(6), rate: f(7), burst: i(8), cut: i(9) == 1, learned: i(10) == 1, inflight: i(11),
		globalLimit: f(19), globalRate: f(12), globalBurst: i(13), globalInflight: i(14), fleet: i(15),
	}
	return r, err
}

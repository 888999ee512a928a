-- Paged sorted sets (registry/paged_index.py says why and how): the commit scripts
-- of registry/store.py, and the paged reads, begin with these functions.
--
-- A lexical index K (members all scored 0) is kept as
--   K                     STRING  how many members the set holds
--   K#                    ZSET    the pages' low bounds (score 0); the first is ''
--   K#<sha1 of bound>     ZSET    the members m with bound <= m < the next bound
-- Page keys are found from the directory here, not given in KEYS: they share K's
-- hash tag, so they are in K's slot.

local PAGE_MAX = 256 -- registry.paged_index.PAGE_MAX (a test checks they agree)
local DIR_CHUNK = 128 -- directory entries read at a time by a walk

local function page_key(key, low)
  return key .. '#' .. redis.sha1hex(low)
end

-- The low bound of the page holding `member` (nil: the set is empty).
local function bound_of(dir, member)
  return redis.call('ZREVRANGEBYLEX', dir, '[' .. member, '-', 'LIMIT', 0, 1)[1]
end

-- a < b in byte order (Lua's own < follows the server's locale).
local function before(a, b)
  local n = math.min(#a, #b)
  local k = 1
  while k + 15 <= n and string.sub(a, k, k + 15) == string.sub(b, k, k + 15) do
    k = k + 16
  end
  while k <= n do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then
      return x < y
    end
    k = k + 1
  end
  return #a < #b
end

-- Writing members into a compact sorted set by ZADD costs Redis a scan of it per
-- member: a page of 256 written in order, ~6 us a member (128: ~3.5). A sorted set
-- built as a skiplist and copied by ZUNIONSTORE comes out compact in one pass, ~1.2 us
-- a member at any size. ZADD makes a skiplist when its first member is longer than
-- zset-max-ziplist-value (1024, paged_index.COMPACT_PAGES): BUILD_MARK is that member.
-- It is above every member in byte order (UTF-8 text holds no byte 255), so it is a
-- build's last; it is removed before the copy.
local BUILD_MARK = string.rep('\255', 1025)
local BUILD = '#build' -- K#build: a scratch set, within one script call only
-- A run of members this long or longer is merged into its page by a rebuild; a
-- shorter one, into a page it does not overflow, by ZADD (cheaper for a few members).
local REBUILD_RUN = 32
-- A run in order this long or longer, that no member of its page falls within, becomes
-- pages of its own (merge_run): a quarter page, so that the runs of a batch split
-- among a few values (a product name, a lot) take this path too.
local OWN_PAGE_RUN = PAGE_MAX / 4

-- members[first..last] in the scratch set `scratch`, a skiplist (BUILD_MARK included).
local function scratch_with(scratch, members, first, last)
  local args = { 0, BUILD_MARK }
  for k = first, last do
    args[#args + 1] = 0
    args[#args + 1] = members[k]
  end
  redis.call('ZADD', scratch, unpack(args))
end

-- The page `page` rebuilt from the skiplist `scratch` (emptied, BUILD_MARK dropped).
local function page_from(page, scratch)
  redis.call('ZREM', scratch, BUILD_MARK)
  redis.call('ZUNIONSTORE', page, 1, scratch)
  redis.call('DEL', scratch)
end

-- Merge members[first..last] (in byte order, all at or above `low` and below the next
-- bound) into the page of bound `low`; returns how many were new. A page past
-- PAGE_MAX members is cut into pieces of PAGE_MAX / 2 .. PAGE_MAX
-- (registry.paged_index.split_sizes); the first keeps the page's key, each other is a
-- new page named by its first member. Every piece is compact.
-- `all` with members[first..last] appended, in order, each dropped that repeats the
-- one before it (the members are in byte order: a repeat is a neighbour).
local function append_distinct(all, members, first, last)
  for k = first, last do
    if members[k] ~= all[#all] then
      all[#all + 1] = members[k]
    end
  end
  return all
end

local function merge_run(key, dir, low, page, members, first, last, ordered)
  local count = redis.call('ZCARD', page)
  local run = last - first + 1
  if run < REBUILD_RUN and count + run <= PAGE_MAX then
    local args = {}
    for k = first, last do
      args[#args + 1] = 0
      args[#args + 1] = members[k]
    end
    return redis.call('ZADD', page, unpack(args))
  end
  local scratch = key .. BUILD
  local all
  if
    ordered
    and count > 0
    and run >= OWN_PAGE_RUN
    and redis.call('ZLEXCOUNT', page, '[' .. members[first], '[' .. members[last]) == 0
  then
    -- A run in order, long enough to fill pages of its own, that no member of the page
    -- falls within (a bulk load in order): the run becomes new pages, the page's
    -- members above it another, those below stay as they are. Merged into the page,
    -- its members would be rewritten with every run: 2-3 times the run's own cost,
    -- measured in the capacity benchmark's batch registration.
    local above = redis.call('ZRANGEBYLEX', page, '(' .. members[last], '+')
    local kept = count - #above
    if #above > 0 then
      redis.call('ZREMRANGEBYLEX', page, '(' .. members[last], '+')
      redis.call('ZADD', dir, 0, above[1])
      scratch_with(scratch, above, 1, #above)
      page_from(page_key(key, above[1]), scratch)
    end
    all = append_distinct({}, members, first, last)
    local pieces = math.max(1, math.floor(#all / (PAGE_MAX / 2)))
    local start = 1
    for p = 1, pieces do
      local stop = math.floor(#all * p / pieces)
      local target = page -- emptied above: the run's first piece takes its place
      if p > 1 or kept > 0 then
        target = page_key(key, all[start])
        redis.call('ZADD', dir, 0, all[start])
      end
      scratch_with(scratch, all, start, stop)
      page_from(target, scratch)
      start = stop + 1
    end
    return #all
  end
  local tail = ordered and redis.call('ZRANGE', page, -1, -1)[1]
  if ordered and (tail == nil or before(tail, members[first])) then
    -- Appended (the common bulk load): the merged order is the page's, then the run's
    -- (a repeat dropped), no union needed to find it.
    all = append_distinct(redis.call('ZRANGE', page, 0, -1), members, first, last)
  else
    scratch_with(scratch, members, first, last)
    local merged = redis.call('ZUNIONSTORE', scratch, 2, scratch, page) - 1
    if merged == count then
      redis.call('DEL', scratch)
      return 0
    end
    if merged <= PAGE_MAX then
      page_from(page, scratch)
      return merged - count
    end
    all = redis.call('ZRANGE', scratch, 0, merged - 1)
    redis.call('DEL', scratch)
  end
  local merged = #all
  local added = merged - count
  if merged <= PAGE_MAX then
    scratch_with(scratch, all, 1, merged)
    page_from(page, scratch)
    return added
  end
  local pieces = math.floor(merged / (PAGE_MAX / 2))
  local start = 1
  for p = 1, pieces do
    local stop = math.floor(merged * p / pieces)
    if p > 1 then
      redis.call('ZADD', dir, 0, all[start])
      scratch_with(scratch, all, start, stop)
      page_from(page_key(key, all[start]), scratch)
    elseif
      stop <= count
      and redis.call('ZRANGE', page, stop - 1, stop - 1)[1] == all[stop]
    then
      -- The first piece is the page's own first members (nothing new among them,
      -- as when members are appended): its others leave it, it is not rewritten.
      redis.call('ZREMRANGEBYRANK', page, stop, -1)
    else
      scratch_with(scratch, all, start, stop)
      page_from(page, scratch)
    end
    start = stop + 1
  end
  return added
end

-- A set still in one sorted set at K (layout 5 and older, before the upgrade has
-- converted it): a write before the upgrade goes there, and is converted with it.
local function unpaged(key)
  return redis.call('TYPE', key).ok == 'zset'
end

-- The end of the run of members[i..last] below `after` (nil: no bound), members[i]
-- being below it: the first position past the run. Members in byte order (`ordered`)
-- are cut by a binary search, a few compares a run (before() costs ~2 us in Lua);
-- others are taken while they stay in order, at or above `low`.
local function run_end(members, i, last, low, after, ordered)
  if ordered then
    if after == nil then
      return last + 1
    end
    local lo, hi = i + 1, last + 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if before(members[mid], after) then
        lo = mid + 1
      else
        hi = mid
      end
    end
    return lo
  end
  local j = i + 1
  while
    j <= last
    and (after == nil or before(members[j], after))
    and not before(members[j], low)
  do
    j = j + 1
  end
  return j
end

-- Add members[first..last] to the set K; members go to their pages a run at a time
-- (merge_run). `ordered`: the caller has them in byte order (else any order: a run
-- ends where they leave it). Returns how many were new.
local function paged_add(key, members, first, last, ordered)
  if unpaged(key) then
    for i = first, last do
      redis.call('ZADD', key, 0, members[i])
    end
    return 0
  end
  local dir = key .. '#'
  local added = 0
  local i = first
  while i <= last do
    local low = bound_of(dir, members[i])
    if not low then
      low = ''
      redis.call('ZADD', dir, 0, '')
    end
    local after = nil -- the next page's bound, read only when a member follows
    if i < last then
      after = redis.call('ZRANGEBYLEX', dir, '(' .. low, '+', 'LIMIT', 0, 1)[1]
    end
    local j = run_end(members, i, last, low, after, ordered)
    local page = page_key(key, low)
    added = added + merge_run(key, dir, low, page, members, i, j - 1, ordered)
    i = j
  end
  if added > 0 then
    redis.call('INCRBY', key, added)
  end
  return added
end

-- Remove members[first..last] from the set K; a page left empty leaves the directory
-- (Redis deletes an empty sorted set), the set's keys all go with its last member.
local function paged_remove(key, members, first, last)
  if unpaged(key) then
    for i = first, last do
      redis.call('ZREM', key, members[i])
    end
    return 0
  end
  local dir = key .. '#'
  local removed = 0
  for i = first, last do
    local low = bound_of(dir, members[i])
    if low then
      local page = page_key(key, low)
      if redis.call('ZREM', page, members[i]) == 1 then
        removed = removed + 1
        if low ~= '' and redis.call('EXISTS', page) == 0 then
          redis.call('ZREM', dir, low)
        end
      end
    end
  end
  if removed > 0 and redis.call('DECRBY', key, removed) <= 0 then
    redis.call('DEL', key, dir)
  end
  return removed
end

-- visit(page, partial) for each page that may hold members in the ZRANGEBYLEX range
-- [min, max], in order, until it returns true; partial: the page may hold members
-- outside the range (the first page, the last, when the range is bounded there).
local function walk(key, min, max, visit)
  local dir = key .. '#'
  local start = '-'
  if min ~= '-' then
    local low = bound_of(dir, string.sub(min, 2))
    if not low then
      return
    end
    start = '[' .. low
  end
  local offset, first, pending = 0, true, nil
  while true do
    local lows = redis.call('ZRANGEBYLEX', dir, start, max, 'LIMIT', offset, DIR_CHUNK)
    for _, low in ipairs(lows) do
      if pending ~= nil then
        if visit(page_key(key, pending), first and min ~= '-') then
          return
        end
        first = false
      end
      pending = low
    end
    if #lows < DIR_CHUNK then
      break
    end
    offset = offset + DIR_CHUNK
  end
  if pending ~= nil then
    visit(page_key(key, pending), (first and min ~= '-') or max ~= '+')
  end
end

-- Members in [min, max], skipping `offset` of them, at most `limit` (< 0: all): what
-- ZRANGEBYLEX K min max LIMIT offset limit answers for a plain sorted set. Pages are
-- skipped by their counts (ZCARD), a deep offset costs a call per page before it.
local function paged_range(key, min, max, offset, limit)
  local out = {}
  if limit == 0 then
    return out
  end
  walk(key, min, max, function(page, partial)
    if offset > 0 then
      local n
      if partial then
        n = redis.call('ZLEXCOUNT', page, min, max)
      else
        n = redis.call('ZCARD', page)
      end
      if offset >= n then
        offset = offset - n
        return false
      end
    end
    local want = -1
    if limit >= 0 then
      want = limit - #out
    end
    local got
    if partial then
      got = redis.call('ZRANGEBYLEX', page, min, max, 'LIMIT', offset, want)
    elseif want < 0 then
      got = redis.call('ZRANGE', page, offset, -1)
    else
      got = redis.call('ZRANGE', page, offset, offset + want - 1)
    end
    offset = 0
    for _, m in ipairs(got) do
      out[#out + 1] = m
    end
    return limit >= 0 and #out >= limit
  end)
  return out
end

-- How many members are in [min, max] (ZLEXCOUNT); the whole set's count is kept.
local function paged_count(key, min, max)
  if min == '-' and max == '+' then
    return tonumber(redis.call('GET', key) or '0')
  end
  local n = 0
  walk(key, min, max, function(page, partial)
    if partial then
      n = n + redis.call('ZLEXCOUNT', page, min, max)
    else
      n = n + redis.call('ZCARD', page)
    end
    return false
  end)
  return n
end

-- ZSCORE of each of members[first..last] (false: not a member).
local function paged_scores(key, members, first, last)
  local dir = key .. '#'
  local out = {}
  for i = first, last do
    local low = bound_of(dir, members[i])
    local score = false
    if low then
      score = redis.call('ZSCORE', page_key(key, low), members[i])
    end
    out[#out + 1] = score
  end
  return out
end

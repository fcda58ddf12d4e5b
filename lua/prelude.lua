-- The Lua twin of the Flash module: shared helpers. The client sends these (those a body needs)
-- and one command body as a single script, so everything here is a local the body can see.
--
-- The constants come from core's contract (core/src/contract.rs), put in by the client
-- (client/src/lua/header.rs): the limits (MAX_*, DEFAULT_*), the key layout (KEY_*, SALE_KEYS,
-- SALE_KEY_TYPES, and KEYS_* each sale key's place in KEYS), the stock counters (C_*,
-- COUNTERS), the fields of the sale (SALE_*) and order entry (ORDER_*), the cart record's
-- separators (CART_*), the deadline lists (KEY_DEADLINES, DEADLINE_SEPARATOR), the
-- cart states (S_*, CART_STATES), the stock event's members (EVENT_*), the waiting room's
-- counters (Q_*), place states (P_*) and draw (TICKET_BASE, DRAW_*), and the reply labels,
-- option keywords and error words (R.HELD_CARTS, KW.HOLD, E.SOLDOUT). A name for one value is
-- written as that value where the code names it; the lists are locals of a short header. The
-- client also sends only the declarations of this file that the command's body reaches
-- (client/src/lua/shake.rs: a declaration starts at column 0 with `local` or `function`, and
-- takes the comment lines right above it). The Lua files spell none of the contract's values
-- themselves (the client's tests refuse one that does, but for argument labels and a few of
-- Redis's own words), so a name changed in core reaches the twin with no Lua edit.
--
-- The behaviour is the Rust engine's in core/src: every check, its order, every error
-- message and every write here copies it, and where core leaves a detail to the storage (a
-- stored value that is not an integer, a cart record Flash did not write) this follows the
-- module's store (module/src/store/). The conformance suite (tests/tests/engine) runs every
-- engine test on both and compares the replies and error lines. Conventions (README "The Lua
-- twin", core/src/keys.rs, client/src/lua):
--   KEYS[1..#SALE_KEYS]  the sale's keys, in SALE_KEYS order
--   KEYS[#SALE_KEYS+1..] cart keys (the cart named in ARGV, or EXPIRE's due candidates)
--   ARGV                 the module command's arguments, without the command name.
-- The deadline lists (`flash:{S}:deadlines:<hold>`) are the one exception: their names come
-- from the sale's settings, read by the script, so they are not in KEYS. They carry the
-- sale's hash tag, so on a cluster they are in the slot of the keys declared, which Redis
-- allows a script to reach (as the module reaches every key of the sale it is given).
--
-- Errors are raised as {flash_error = line} and turned into an error reply by run(), so that
-- a check deep in a helper stops the command. Every check runs before the first write.

---------------------------------------------------------------------------------------------
-- Plain values, declared before every helper: a closure made on each call finds each local it
-- captures by a walk over the locals captured so far that were declared after that one, so
-- the helpers captured most (fail, call, int_text, stored_int…) should have few such values
-- declared after them.

-- The library functions the per-call helpers use most, as locals: a global is a table lookup
-- on every use (string.format two).
local format, tonumber = string.format, tonumber

-- Every helper a script reaches is a new closure on every call, so a message used in a few
-- places is a string (fail(E.WRONGTYPE, WRONG_TYPE)) or written in place (BADSTATE, CLOSED),
-- not a fail_* function.
local WRONG_TYPE = 'Operation against a key holding the wrong kind of value'

-- What String::from_utf8_lossy puts for a bad sequence (utf8_lossy).
local UTF8_REPLACEMENT = '\239\191\189'

-- KEYS[FIRST_CART_KEY..] are carts.
local FIRST_CART_KEY = #SALE_KEYS + 1

-- The sale's keys, as the client passed them (checked by begin()).
local SETTINGS_KEY = KEYS[KEYS_SALE]
local STOCK_KEY = KEYS[KEYS_STOCK]
local USERS_KEY = KEYS[KEYS_USERS]
local ORDERS_KEY = KEYS[KEYS_ORDERS]
-- The waiting room's keys: its counters (a hash), and the sorted sets of the shoppers
-- waiting (the line), of when each waiting shopper last asked (seen), and of when each
-- admission ends (admitted).
local QUEUE_KEY = KEYS[KEYS_QUEUE]
local LINE_KEY = KEYS[KEYS_LINE]
local SEEN_KEY = KEYS[KEYS_SEEN]
local ADMITTED_KEY = KEYS[KEYS_ADMITTED]

-- Set by begin(): the start of every key name of the sale (`flash:{spring}:`), and the
-- pub/sub channel, which is not a key, so it comes from the sale name.
local sale_key_prefix, events_channel

-- The clock's one reading per script (now_ms).
local cached_now_ms

---------------------------------------------------------------------------------------------
-- Errors (core/src/error.rs)

local function fail(code, message)
    error({ flash_error = code .. ' ' .. message })
end

local function quoted(name)
    return "'" .. name .. "'"
end

-- Runs a command body. Our own errors become error replies; anything else is a bug in the
-- script and is raised as it is, so it shows up with its line number.
local function run(body)
    local ok, result = pcall(body)
    if ok then
        return result
    end
    if type(result) == 'table' and result.flash_error then
        return redis.error_reply(result.flash_error)
    end
    error(result, 0)
end

-- redis.call, but a failing call (WRONGTYPE on a read) answers with Redis's own error line,
-- without the "script: …" suffix a raised redis.call error would get.
local function call(...)
    local reply = redis.pcall(...)
    if type(reply) == 'table' and reply.err then
        error({ flash_error = reply.err })
    end
    return reply
end

-- Lua numbers are doubles: tostring(1.7e12) is '1.7e+12', so every number written to Redis
-- or into a message goes through here. Parse limits keep all of them below 2^53.
local function int_text(n)
    return format('%d', n)
end

---------------------------------------------------------------------------------------------
-- Arguments (core/src/args.rs)

-- The module quotes arguments through String::from_utf8_lossy (and cuts them by characters,
-- not bytes), so a non-UTF-8 argument must read the same here: one U+FFFD per bad sequence.
-- The decoder is made only for such an argument (a helper declared at the top would be a new
-- closure on every call of every script that can quote one).
local function utf8_lossy(raw, max_chars)
    if not raw:find('[\128-\255]') then
        return max_chars and raw:sub(1, max_chars) or raw
    end

    -- Length of the character at `pos` of `raw` and whether it is well-formed, by the rules of
    -- Rust's String::from_utf8_lossy: a bad sequence is cut where it stops being a valid prefix.
    local function utf8_char_at(raw, pos)
        local lead = raw:byte(pos)
        if lead < 0x80 then
            return 1, true
        end
        local second = raw:byte(pos + 1) or 0
        local width, low, high
        if lead >= 0xC2 and lead <= 0xDF then
            width, low, high = 2, 0x80, 0xBF
        elseif lead >= 0xE0 and lead <= 0xEF then
            width, low, high = 3, 0x80, 0xBF
            if lead == 0xE0 then
                low = 0xA0
            elseif lead == 0xED then
                high = 0x9F
            end
        elseif lead >= 0xF0 and lead <= 0xF4 then
            width, low, high = 4, 0x80, 0xBF
            if lead == 0xF0 then
                low = 0x90
            elseif lead == 0xF4 then
                high = 0x8F
            end
        else
            return 1, false
        end
        if second < low or second > high then
            return 1, false
        end
        for offset = 2, width - 1 do
            -- A continuation byte is 0x80..0xBF.
            local byte = raw:byte(pos + offset) or 0
            if byte < 0x80 or byte > 0xBF then
                return offset, false
            end
        end
        return width, true
    end

    local chars, pos = {}, 1
    while pos <= #raw and not (max_chars and #chars >= max_chars) do
        local length, valid = utf8_char_at(raw, pos)
        chars[#chars + 1] = valid and raw:sub(pos, pos + length - 1) or UTF8_REPLACEMENT
        pos = pos + length
    end
    return table.concat(chars)
end

-- to_ascii_uppercase: only a-z change, whatever the C library's locale says.
local function ascii_upper(text)
    return (text:gsub('[a-z]', function(letter)
        return string.char(letter:byte() - 32)
    end))
end

local function parse_int(what, raw, min, max)
    -- The usual spelling first: a number within the limits that %d writes back as `raw` is
    -- what the digits below would give (a sign and at most 16 digits, no '-0').
    local value = tonumber(raw)
    if value ~= nil and value >= min and value <= max and format('%d', value) == raw then
        return value
    end
    value = nil
    local negative = raw:sub(1, 1) == '-'
    local digits = negative and raw:sub(2) or raw
    if #digits >= 1 and #digits <= 16 and not digits:find('[^0-9]') then
        value = tonumber(digits)
        -- -0 is 0, as in i64; a double would keep the sign.
        if negative and value ~= 0 then
            value = -value
        end
    end
    -- 16 digits may pass 2^53 and round, but never down to a value within the limits,
    -- which all stay below 2^53.
    if value == nil or value < min or value > max then
        fail(E.ERR, what .. ' must be an integer from ' .. int_text(min) .. ' to ' .. int_text(max))
    end
    return value
end

local Args = {}
Args.__index = Args

local function new_args(command)
    return setmetatable({ command = command, next = 1 }, Args)
end

function Args:remaining()
    return #ARGV - self.next + 1
end

function Args:raw()
    local raw = ARGV[self.next]
    if raw == nil then
        fail(E.ERR, 'wrong number of arguments for ' .. quoted(self.command) .. ' command')
    end
    self.next = self.next + 1
    return raw
end

-- A name (sale, cart, order, user): safe inside key names, stream fields and messages.
function Args:token(what)
    local raw = self:raw()
    if #raw > MAX_TOKEN_LEN or not raw:find('^[A-Za-z0-9_.:@%-]+$') then
        fail(E.ERR, what .. ' must be 1 to 64 characters from A-Z a-z 0-9 - _ . : @')
    end
    return raw
end

function Args:int(what, min, max)
    return parse_int(what, self:raw(), min, max)
end

function Args:sku()
    return self:int('sku', 1, MAX_SKU)
end

-- Optional, 1 when absent.
function Args:qty()
    if ARGV[self.next] == nil then
        return 1
    end
    return self:int('qty', 1, MAX_QTY)
end

-- Consumes the next argument if it is `word` (case-insensitive).
function Args:accept(word)
    local raw = ARGV[self.next]
    if raw ~= nil and ascii_upper(raw) == word then
        self.next = self.next + 1
        return true
    end
    return false
end

function Args:keyword()
    return ascii_upper(utf8_lossy(self:raw()))
end

-- Leftovers are a syntax error, never ignored.
function Args:finish()
    local extra = ARGV[self.next]
    if extra ~= nil then
        fail(E.ERR, 'syntax error near ' .. quoted(utf8_lossy(extra, 32)))
    end
end

---------------------------------------------------------------------------------------------
-- Keys (core/src/keys.rs)

local function cart_key_name(cart_id)
    return sale_key_prefix .. KEY_CART .. cart_id
end

-- Every command starts here: the sale name first (arity, then its syntax), then the keys the
-- client passed must be that sale's, or the script would act on another sale's data.
local function begin(command)
    local args = new_args(command)
    local sale_name = args:token('sale')
    sale_key_prefix = KEY_PREFIX .. '{' .. sale_name .. '}:'
    for index = 1, #SALE_KEYS do
        if KEYS[index] ~= sale_key_prefix .. SALE_KEYS[index] then
            fail(E.ERR, 'keys do not match sale ' .. quoted(sale_name))
        end
    end
    events_channel = sale_key_prefix .. KEY_EVENTS
    return args, sale_name
end

-- cmd/mod.rs count_option: FLASH.EXPIRE's and FLASH.ADMIT's `[COUNT n]`, n in 1..max.
local function count_option(args, default, max)
    local count = default
    while args:remaining() > 0 do
        local option = args:keyword()
        if option == KW.COUNT then
            count = args:int(KW.COUNT, 1, max)
        else
            fail(E.ERR, 'unknown option ' .. quoted(option) .. '; expected COUNT')
        end
    end
    args:finish()
    return count
end

-- The first cart key must be the cart named in ARGV: the only cart a cart command may touch.
local function declared_cart_key(cart_id)
    local key = cart_key_name(cart_id)
    if KEYS[FIRST_CART_KEY] ~= key then
        fail(E.ERR, 'keys do not match cart ' .. quoted(cart_id))
    end
    return key
end

-- The deadline list of the carts held for `hold_ms` (keys::SaleKeys::deadlines).
local function lane_key(hold_ms)
    return sale_key_prefix .. KEY_DEADLINES .. int_text(hold_ms)
end

-- Store::guard: a key about to be written without being read first must not hold another
-- type, checked before the first write so that the error changes nothing.
-- `positions` are sale keys' places in KEYS (KEYS_*), `deadlines_key` a deadline list
-- (Store::guard_lane). check_type is made here, not at the top, so that only a script that
-- guards makes it, and only when it does.
local function guard(positions, cart_key, deadlines_key)
    local function check_type(key, expected)
        local actual = call('TYPE', key).ok
        if actual ~= 'none' and actual ~= expected then
            fail(E.WRONGTYPE, WRONG_TYPE)
        end
    end
    for _, position in ipairs(positions) do
        check_type(KEYS[position], SALE_KEY_TYPES[position])
    end
    if cart_key then
        check_type(cart_key, CART_KEY_TYPE)
    end
    if deadlines_key then
        check_type(deadlines_key, DEADLINES_KEY_TYPE)
    end
end

---------------------------------------------------------------------------------------------
-- The clock

-- One reading per script, like the module's one reading per command: FLASH.BUY's reserve and
-- checkout must agree on whether the cart is live.
local function now_ms()
    if cached_now_ms == nil then
        local time = redis.call('TIME')
        -- TIME's microseconds, down to whole milliseconds (exact in doubles).
        local us = tonumber(time[2])
        cached_now_ms = tonumber(time[1]) * 1000 + (us - us % 1000) / 1000
    end
    return cached_now_ms
end

---------------------------------------------------------------------------------------------
-- Stored integers

-- A stored value as the module reads it (Rust's i64 FromStr): a sign, digits, nothing else.
-- Anything else reads as absent, never as a number Lua's tonumber would make of it.
-- Flash writes a value as int_text does, so that spelling is checked first: it is the number
-- written back the same (what %d writes matches the pattern), and a format is cheaper than a
-- pattern match. Any other spelling ('+5', '007', '1e3', ' 5') takes the pattern.
local function stored_int(text)
    local value = tonumber(text)
    if value == nil then
        return nil
    end
    if format('%d', value) == text then
        return value
    end
    if type(text) ~= 'string' or not text:find('^[+-]?%d+$') then
        return nil
    end
    return value
end

---------------------------------------------------------------------------------------------
-- Sale settings (core/src/model.rs Sale)

local function hash_to_map(fields)
    local map = {}
    for i = 1, #fields, 2 do
        map[fields[i]] = fields[i + 1]
    end
    return map
end

-- The settings, or nil when the sale does not exist (an empty hash does not exist). One
-- HMGET of the fields it knows (a missing field reads as false); only a hash with none of
-- them needs EXISTS to tell an empty sale from none.
-- Splits `text` at each `separator` (plain, not a pattern) into at most `most` parts, the
-- last one taking the rest.
local function split_plain(text, separator, most)
    local parts, from = {}, 1
    while #parts < most - 1 do
        local at = text:find(separator, from, true)
        if at == nil then
            break
        end
        parts[#parts + 1] = text:sub(from, at - 1)
        from = at + #separator
    end
    parts[#parts + 1] = text:sub(from)
    return parts
end

-- model::Lanes::insert: each hold once, at most MAX_LANES; false when full.
local function add_lane(lanes, hold_ms)
    for _, known in ipairs(lanes) do
        if known == hold_ms then
            return true
        end
    end
    if #lanes == MAX_LANES then
        return false
    end
    lanes[#lanes + 1] = hold_ms
    return true
end

-- model::Lanes::parse: what does not read as a hold is skipped.
local function parse_lanes(text)
    local lanes = {}
    if text then
        for _, part in ipairs(split_plain(text, SALE_LANE_SEPARATOR, MAX_LANES * 4)) do
            local hold_ms = stored_int(part)
            if hold_ms and hold_ms > 0 then
                add_lane(lanes, hold_ms)
            end
        end
    end
    return lanes
end

-- model::Seed::stored: MIN_SEED_LEN to MAX_SEED_LEN hex digits, read lower-case; anything
-- else (or no field) reads as none, the empty string. Also FLASH.SALE's SEED (Seed::parse),
-- which answers nil for a seed it refuses.
local function parse_seed(text)
    if text and #text >= MIN_SEED_LEN and #text <= MAX_SEED_LEN
        and not text:find('[^0-9A-Fa-f]') then
        return text:lower()
    end
    return nil
end

-- The settings, or nil when the sale does not exist (an empty hash does not exist). One
-- HMGET of the fields it knows (a missing field reads as false); only a hash with none of
-- them needs EXISTS to tell an empty sale from none. The waiting room's settings are fields
-- of the same table (model::QueueSettings): queue_rate, queue_cap, admit_ms, idle_ms, seed.
local function read_sale()
    local v = call('HMGET', SETTINGS_KEY,
        SALE_HOLD_MS, SALE_LIMIT, SALE_START_MS, SALE_END_MS, SALE_RETAIN_MS, SALE_LANES,
        SALE_QUEUE_RATE, SALE_QUEUE_CAP, SALE_ADMIT_MS, SALE_IDLE_MS, SALE_QUEUE_SEED)
    if not (v[1] or v[2] or v[3] or v[4] or v[5] or v[6] or v[7] or v[8] or v[9] or v[10]
            or v[11])
        and call('EXISTS', SETTINGS_KEY) == 0 then
        return nil
    end
    return {
        hold_ms = stored_int(v[1]) or DEFAULT_HOLD_MS,
        limit = stored_int(v[2]) or 0,
        start_ms = stored_int(v[3]) or 0,
        end_ms = stored_int(v[4]) or 0,
        retain_ms = stored_int(v[5]) or DEFAULT_RETAIN_MS,
        lanes = parse_lanes(v[6] or nil),
        queue_rate = stored_int(v[7]) or 0,
        queue_cap = stored_int(v[8]) or 0,
        admit_ms = stored_int(v[9]) or DEFAULT_ADMIT_MS,
        idle_ms = stored_int(v[10]) or DEFAULT_IDLE_MS,
        seed = parse_seed(v[11] or nil) or '',
    }
end

local function default_sale()
    return { hold_ms = DEFAULT_HOLD_MS, limit = 0, start_ms = 0, end_ms = 0,
        retain_ms = DEFAULT_RETAIN_MS, lanes = {}, queue_rate = 0, queue_cap = 0,
        admit_ms = DEFAULT_ADMIT_MS, idle_ms = DEFAULT_IDLE_MS, seed = '' }
end

-- Sale::lanes_to_look_at: the recorded lanes and the current HOLD's.
local function lanes_to_look_at(sale)
    local lanes = {}
    for _, hold_ms in ipairs(sale.lanes) do
        lanes[#lanes + 1] = hold_ms
    end
    add_lane(lanes, sale.hold_ms)
    return lanes
end

local function write_sale(sale)
    local lanes = {}
    for i, hold_ms in ipairs(sale.lanes) do
        lanes[i] = int_text(hold_ms)
    end
    call('HSET', SETTINGS_KEY,
        SALE_HOLD_MS, int_text(sale.hold_ms),
        SALE_LIMIT, int_text(sale.limit),
        SALE_START_MS, int_text(sale.start_ms),
        SALE_END_MS, int_text(sale.end_ms),
        SALE_RETAIN_MS, int_text(sale.retain_ms),
        SALE_LANES, table.concat(lanes, SALE_LANE_SEPARATOR),
        SALE_QUEUE_RATE, int_text(sale.queue_rate),
        SALE_QUEUE_CAP, int_text(sale.queue_cap),
        SALE_ADMIT_MS, int_text(sale.admit_ms),
        SALE_IDLE_MS, int_text(sale.idle_ms),
        SALE_QUEUE_SEED, sale.seed)
end

-- A cart just finished (settled, rejected, expired): Redis removes it once the sale's
-- retention has passed (cmd::retire_cart). PEXPIREAT, an absolute time, so a replica or an
-- AOF replay removes it at the master's moment.
local function retire_cart(sale, cart_key, at_ms)
    if sale.retain_ms > 0 then
        call('PEXPIREAT', cart_key, int_text(at_ms + sale.retain_ms))
    end
end

local function require_sale(sale_name)
    local sale = read_sale()
    if sale == nil then
        fail(E.NOSALE, 'sale ' .. quoted(sale_name) .. ' does not exist; create it with FLASH.SALE')
    end
    return sale
end

-- start_ms <= now < end_ms, each edge ignored when 0.
local function is_open(sale, at_ms)
    return (sale.start_ms == 0 or at_ms >= sale.start_ms)
        and (sale.end_ms == 0 or at_ms < sale.end_ms)
end

---------------------------------------------------------------------------------------------
-- Counters and users

local function stock_field(sku, counter)
    return int_text(sku) .. STOCK_FIELD_SEPARATOR .. counter
end

-- A SKU's counter; nil when the SKU has no such field (never loaded). Not `units`: the shake
-- reads a table constructor's `units = …` as a use of the name, and would send this helper
-- with every script that builds a cart.
local function stock_units(counter, sku)
    return stored_int(call('HGET', STOCK_KEY, stock_field(sku, counter)))
end

local function set_units(counter, sku, value)
    call('HSET', STOCK_KEY, stock_field(sku, counter), int_text(value))
end

-- Writes the absolute result, never HINCRBY: what the module replicates, too.
local function add_units(counter, sku, delta)
    local value = (stock_units(counter, sku) or 0) + delta
    set_units(counter, sku, value)
    return value
end

local function user_units(user)
    return stored_int(call('HGET', USERS_KEY, user)) or 0
end

-- A user with no units left leaves the hash (Store::set_user_units): absent reads as 0, and
-- after a sale only the users who bought stay.
local function add_user_units(user, delta)
    local units = user_units(user) + delta
    if units == 0 then
        call('HDEL', USERS_KEY, user)
    else
        call('HSET', USERS_KEY, user, int_text(units))
    end
end

-- The sale's held carts (Store::held_carts), a field of the stock hash.
local function add_held_carts(delta)
    local carts = stored_int(call('HGET', STOCK_KEY, HELD_CARTS_FIELD)) or 0
    call('HSET', STOCK_KEY, HELD_CARTS_FIELD, int_text(carts + delta))
end

local function publish_available(sku, available)
    -- wire::StockEvent::to_json: {"sku":14,"available":7}. SPUBLISH, like the module: the
    -- channel carries the sale's hash tag, so on a cluster it stays within the sale's shard.
    call('SPUBLISH', events_channel, '{"' .. EVENT_SKU .. '":' .. int_text(sku)
        .. ',"' .. EVENT_AVAILABLE .. '":' .. int_text(available) .. '}')
end

---------------------------------------------------------------------------------------------
-- The waiting room (core/src/queue.rs, core/src/cmd/position.rs). Its sorted sets are
-- written at once (Store::set_score), so a later read of the same command sees the write.

-- QueueSettings::is_on: the sale has a waiting room, and RESERVE and BUY need an admission.
local function has_queue(sale)
    return sale.queue_rate > 0 or sale.queue_cap > 0
end

-- position.rs require_queue: the settings of a sale with a waiting room (NOSALE, NOQUEUE).
local function require_queue(sale_name)
    local sale = require_sale(sale_name)
    if not has_queue(sale) then
        fail(E.NOQUEUE, 'sale ' .. quoted(sale_name) .. ' has no waiting room')
    end
    return sale
end

-- Store::score: the user's score in one of the sorted sets, nil when the user is not in it.
-- Flash writes integers; a score written by hand is cut toward zero, as the module reads it.
local function score_of(key, user)
    local score = tonumber(call('ZSCORE', key, user))
    if score and score ~= math.floor(score) then
        score = score < 0 and math.ceil(score) or math.floor(score)
    end
    return score
end

-- Store::set_score: nil removes the user. The score as integer text (int_text), which Redis
-- stores exactly (every score stays below 2^53).
local function set_score(key, user, score)
    if score == nil then
        call('ZREM', key, user)
    else
        call('ZADD', key, int_text(score), user)
    end
end

-- position.rs live_admission: when the user's admission ends, if it is live at `at_ms`.
local function live_admission(user, at_ms)
    local until_ms = score_of(ADMITTED_KEY, user)
    if until_ms and until_ms > at_ms then
        return until_ms
    end
    return nil
end

-- One of the waiting room's counters (names::queue); absent reads 0. Written as absolute
-- values, like the stock's.
local function queue_counter(field)
    return stored_int(call('HGET', QUEUE_KEY, field)) or 0
end

local function set_queue_counter(field, value)
    call('HSET', QUEUE_KEY, field, int_text(value))
end

-- queue::draw_score: the first DRAW_DIGITS hex digits of sha1(seed ":" user) as an integer
-- (52 bits: below TICKET_BASE, exact in a double).
local function draw_score(seed, user)
    return tonumber(redis.sha1hex(seed .. DRAW_SEPARATOR .. user):sub(1, DRAW_DIGITS), 16)
end

-- queue::eta_ms: when a shopper `ahead` places from the front is admitted at `rate` a
-- second, counting from `from_ms`; 0 without a rate.
local function eta_for(from_ms, ahead, rate)
    if rate <= 0 then
        return 0
    end
    return from_ms + math.floor(ahead * 1000 / rate)
end

-- FLASH.JOIN's and FLASH.POSITION's reply (position.rs reply).
local function place_fields(state, position, line, eta, until_ms)
    return { R.STATE, state, R.POSITION, position, R.LINE, line, R.ETA_MS, eta,
        R.UNTIL_MS, until_ms }
end

-- position.rs admitted_reply: the reply of an admitted user.
local function admitted_reply(until_ms)
    return place_fields(P_ADMITTED, 0, call('ZCARD', LINE_KEY), 0, until_ms)
end

-- position.rs place_reply: the reply of a user in the line.
local function place_reply(sale, user, at_ms, last)
    local line = call('ZCARD', LINE_KEY)
    local rate = sale.queue_rate
    if sale.start_ms > at_ms then
        -- The pre-queue's order is secret until START: the estimate is for the middle.
        local ahead = (line + 1 - (line + 1) % 2) / 2
        return place_fields(P_EARLY, 0, line, eta_for(sale.start_ms, ahead, rate), 0)
    end
    local position = line
    if not last then
        local rank = call('ZRANK', LINE_KEY, user)
        position = rank and rank + 1 or line
    end
    return place_fields(P_WAITING, position, line, eta_for(at_ms, position, rate), 0)
end

---------------------------------------------------------------------------------------------
-- Carts (core/src/model.rs CartRecord: one string per cart; its format in core/src/names.rs)

local function is_cart_state(word)
    for _, state in ipairs(CART_STATES) do
        if word == state then
            return true
        end
    end
    return false
end

-- The order stream's `lines` field, and a cart record's lines: sku:qty pairs ascending by SKU.
local function lines_field(lines)
    local pairs_text = {}
    for _, line in ipairs(lines) do
        pairs_text[#pairs_text + 1] = int_text(line.sku) .. ORDER_QTY_SEPARATOR
            .. int_text(line.qty)
    end
    return table.concat(pairs_text, ORDER_LINE_SEPARATOR)
end

-- CartRecord::decode: the cart's scalar fields and its lines ascending by SKU, or nil for a
-- string Flash did not write.
local function decode_cart(text)
    local parts = split_plain(text, CART_SEPARATOR, 5)
    local state, user = parts[1], parts[2]
    local deadline_ms = stored_int(parts[3])
    if #parts < 5 or not is_cart_state(state) or user == '' or deadline_ms == nil then
        return nil
    end
    local cart = { state = state, user = user, deadline_ms = deadline_ms, units = 0, lines = {} }
    if parts[4] ~= CART_NO_ENTRY then
        cart.entry = parts[4]
    end
    if parts[5] ~= '' then
        for _, pair in ipairs(split_plain(parts[5], ORDER_LINE_SEPARATOR, 1e9)) do
            local at = pair:find(ORDER_QTY_SEPARATOR, 1, true)
            local sku = at and stored_int(pair:sub(1, at - 1))
            local qty = at and stored_int(pair:sub(at + #ORDER_QTY_SEPARATOR))
            local previous = cart.lines[#cart.lines]
            if sku == nil or qty == nil or qty <= 0 or (previous and previous.sku >= sku) then
                return nil
            end
            cart.lines[#cart.lines + 1] = { sku = sku, qty = qty }
            cart.units = cart.units + qty
        end
    end
    return cart
end

-- The cart, or nil when it does not exist. A key of another type, or a string that is no
-- cart record, is refused like the module refuses it (WRONGTYPE).
local function read_cart(key)
    local text = call('GET', key)
    if not text then
        return nil
    end
    local cart = decode_cart(text)
    if cart == nil then
        fail(E.WRONGTYPE, WRONG_TYPE)
    end
    return cart
end

local function require_cart(key, cart_id)
    local cart = read_cart(key)
    if cart == nil then
        fail(E.NOCART, 'cart ' .. quoted(cart_id) .. ' does not exist')
    end
    return cart
end

-- Store::set_cart and set_cart_line: the whole record (CartRecord::encode), one SET.
local function write_cart(key, cart)
    call('SET', key, cart.state .. CART_SEPARATOR .. cart.user .. CART_SEPARATOR
        .. int_text(cart.deadline_ms) .. CART_SEPARATOR .. (cart.entry or CART_NO_ENTRY)
        .. CART_SEPARATOR .. lines_field(cart.lines))
end

-- The quantity of one line (0 when the cart has none of the SKU).
local function cart_line(cart, sku)
    for _, line in ipairs(cart.lines) do
        if line.sku == sku then
            return line.qty
        end
    end
    return 0
end

-- Sets one line, keeping the lines ascending by SKU; 0 removes it.
local function set_cart_line(cart, sku, qty)
    for i, line in ipairs(cart.lines) do
        if line.sku == sku then
            if qty == 0 then
                table.remove(cart.lines, i)
            else
                line.qty = qty
            end
            return
        end
        if line.sku > sku then
            if qty ~= 0 then
                table.insert(cart.lines, i, { sku = sku, qty = qty })
            end
            return
        end
    end
    if qty ~= 0 then
        cart.lines[#cart.lines + 1] = { sku = sku, qty = qty }
    end
end

-- Checked out at some point: the cart is an order, and checkout answers with it again.
local function is_order(state)
    return state == S_CHECKED_OUT or state == S_SETTLED or state == S_REJECTED
end

local function check_owner(cart_id, cart, user)
    if cart.user ~= user then
        fail(E.NOTOWNER, 'cart ' .. quoted(cart_id) .. ' belongs to another user')
    end
end

-- EXPIRED once the hold ran out, whether or not the expiry has run yet; BADSTATE once the
-- cart became an order.
local function check_live(cart_id, cart, at_ms)
    if cart.state == S_HELD and at_ms < cart.deadline_ms then
        return
    end
    if cart.state == S_HELD or cart.state == S_EXPIRED then
        fail(E.EXPIRED, 'cart ' .. quoted(cart_id) .. ' expired; start a new cart')
    end
    fail(E.BADSTATE, 'cart ' .. quoted(cart_id) .. ' is ' .. cart.state)
end

-- CHECKOUT and BUY answer [order, entry, units].
local function order_reply(order_id, cart)
    return { order_id, cart.entry or false, cart.units }
end

---------------------------------------------------------------------------------------------
-- Reserve and checkout: FLASH.RESERVE and FLASH.CHECKOUT, and FLASH.BUY is both in turn.

-- What checkout writes besides the cart.
local CHECKOUT_KEYS = { KEYS_STOCK, KEYS_ORDERS }

-- core/src/cmd/reserve.rs Reserve::reserve. `r` holds sale, cart, cart_key, user, sku, qty,
-- and settings when the caller read the sale already (BUY).
-- `then_writes` lists keys (KEYS_*) the caller writes after a successful reserve (BUY's
-- checkout): they are guarded with reserve's own keys, so that a WRONGTYPE there stops the
-- command before reserve writes anything; and a cart checked out at once never waits, so it
-- gets no deadline entry (reserve::Then::CheckOut). Returns the SKU's units left and the cart
-- as it now is. Each key is read once and written once: the SKU's two counters (and the held
-- carts) with one HMGET and one HSET, the cart with one GET and one SET.
local function reserve(r, then_writes)
    local at_ms = now_ms()
    local sale = r.settings or require_sale(r.sale)
    if not is_open(sale, at_ms) then
        fail(E.CLOSED, 'sale ' .. quoted(r.sale) .. ' is not open')
    end
    -- A sale with a waiting room: only a user holding a live admission (read here, so a key
    -- of another type fails before any write).
    local admission
    if has_queue(sale) then
        admission = live_admission(r.user, at_ms)
        if admission == nil then
            fail(E.NOTADMITTED, 'user ' .. quoted(r.user) .. ' has no admission to sale '
                .. quoted(r.sale) .. '; join its waiting room')
        end
    end
    -- The SKU as text once, for its counters' fields and the stock event.
    local sku_text = int_text(r.sku)
    local available_field = sku_text .. STOCK_FIELD_SEPARATOR .. C_AVAILABLE
    local held_field = sku_text .. STOCK_FIELD_SEPARATOR .. C_HELD
    local counters = call('HMGET', STOCK_KEY, available_field, held_field, HELD_CARTS_FIELD)
    local available = stored_int(counters[1])
    if available == nil then
        fail(E.NOSKU, 'sku ' .. sku_text .. ' is not loaded in sale ' .. quoted(r.sale))
    end
    local existing = read_cart(r.cart_key)
    if existing then
        check_owner(r.cart, existing, r.user)
        check_live(r.cart, existing, at_ms)
    end
    local units_of_user = user_units(r.user)
    if sale.limit > 0 and units_of_user + r.qty > sale.limit then
        fail(E.LIMIT, 'at most ' .. int_text(sale.limit) .. ' units per user in this sale; user '
            .. quoted(r.user) .. ' has ' .. int_text(units_of_user))
    end
    -- The engine's own bound, whatever LIMIT says (a user's units bound each of their carts).
    if units_of_user + r.qty > MAX_UNITS then
        fail(E.LIMIT, 'at most ' .. int_text(MAX_UNITS) .. ' units per user in a sale; user '
            .. quoted(r.user) .. ' has ' .. int_text(units_of_user))
    end
    if available < r.qty then
        fail(E.SOLDOUT, 'sku ' .. sku_text .. ' has ' .. int_text(available) .. ' units left')
    end

    -- The stock, the user's units and the cart were read above (HMGET, HGET, GET): a key of
    -- another type failed there with the same WRONGTYPE line, so only the keys not read yet
    -- are guarded, and the user's units are not read twice.
    local deadlines_key
    if existing == nil and not then_writes then
        deadlines_key = lane_key(sale.hold_ms)
    end
    if deadlines_key or then_writes then
        local written = {}
        for _, position in ipairs(then_writes or {}) do
            if position ~= KEYS_STOCK then
                written[#written + 1] = position
            end
        end
        guard(written, nil, deadlines_key)
    end

    -- Every key written from here was read or guarded above, so no write meets another type:
    -- redis.call, without call's check of the reply.
    local left = available - r.qty
    local held = int_text((stored_int(counters[2]) or 0) + r.qty)
    local cart = existing
    if cart then
        redis.call('HSET', STOCK_KEY, available_field, int_text(left), held_field, held)
        set_cart_line(cart, r.sku, cart_line(cart, r.sku) + r.qty)
        cart.units = cart.units + r.qty
    else
        redis.call('HSET', STOCK_KEY, available_field, int_text(left), held_field, held,
            HELD_CARTS_FIELD, int_text((stored_int(counters[3]) or 0) + 1))
        -- The deadline is fixed here; later reserves never extend it.
        local hold_deadline_ms = at_ms + sale.hold_ms
        if deadlines_key then
            redis.call('RPUSH', deadlines_key,
                int_text(hold_deadline_ms) .. DEADLINE_SEPARATOR .. r.cart)
        end
        cart = { state = S_HELD, user = r.user, deadline_ms = hold_deadline_ms, units = r.qty,
            lines = { { sku = r.sku, qty = r.qty } } }
    end
    redis.call('HSET', USERS_KEY, r.user, int_text(units_of_user + r.qty))
    write_cart(r.cart_key, cart)
    -- A new cart that waits carries the admission to its deadline: the shopper may fill it
    -- until then.
    if admission and deadlines_key and cart.deadline_ms > admission then
        set_score(ADMITTED_KEY, r.user, cart.deadline_ms)
    end
    -- publish_available, with the SKU's text already made.
    redis.call('SPUBLISH', events_channel, '{"' .. EVENT_SKU .. '":' .. sku_text
        .. ',"' .. EVENT_AVAILABLE .. '":' .. int_text(left) .. '}')
    return left, cart
end

-- core/src/cmd/checkout.rs Checkout::apply. `c` holds sale, cart, cart_key, user, and
-- settings when the caller read the sale already (BUY).
local function checkout(c)
    local at_ms = now_ms()
    local sale = c.settings or require_sale(c.sale)
    local cart = require_cart(c.cart_key, c.cart)
    check_owner(c.cart, cart, c.user)
    if is_order(cart.state) then
        return order_reply(c.cart, cart)
    end
    if not is_open(sale, at_ms) then
        fail(E.CLOSED, 'sale ' .. quoted(c.sale) .. ' is not open')
    end
    check_live(c.cart, cart, at_ms)
    if cart.units == 0 then
        fail(E.EMPTY, 'cart ' .. quoted(c.cart) .. ' holds no units')
    end
    -- The admission is used up: its place under the waiting room's CAP goes to the next
    -- shopper.
    local admitted = has_queue(sale) and score_of(ADMITTED_KEY, cart.user) ~= nil
    guard(CHECKOUT_KEYS, c.cart_key)

    for _, line in ipairs(cart.lines) do
        add_units(C_HELD, line.sku, -line.qty)
        add_units(C_PENDING, line.sku, line.qty)
    end
    -- wire::OrderEntry::to_fields
    local entry = call('XADD', ORDERS_KEY, '*',
        ORDER_ORDER, c.cart,
        ORDER_USER, cart.user,
        ORDER_LINES, lines_field(cart.lines),
        ORDER_UNITS, int_text(cart.units))
    -- An order never expires: it stops counting as held (its deadline entry is dropped when
    -- it comes due).
    add_held_carts(-1)
    cart.state = S_CHECKED_OUT
    cart.entry = entry
    if admitted then
        set_score(ADMITTED_KEY, cart.user, nil)
    end
    write_cart(c.cart_key, cart)
    return order_reply(c.cart, cart)
end

-- FLASH.POSITION sale user
-- core/src/cmd/position.rs: a waiting shopper's place, and a sign of life (a shopper who
-- stops asking for IDLE ms loses the place). Replies state, position, line, eta_ms and
-- until_ms as field/value pairs.
return run(function()
    local args, sale_name = begin('FLASH.POSITION')
    local user = args:token('user')
    args:finish()

    local at_ms = now_ms()
    local sale = require_queue(sale_name)
    guard({ KEYS_LINE, KEYS_SEEN, KEYS_ADMITTED })
    local until_ms = live_admission(user, at_ms)
    if until_ms then
        return admitted_reply(until_ms)
    end
    if score_of(LINE_KEY, user) == nil then
        fail(E.NOTQUEUED, 'user ' .. quoted(user) .. ' is not in the waiting room of sale '
            .. quoted(sale_name) .. '; join it again')
    end
    set_score(SEEN_KEY, user, at_ms)
    return place_reply(sale, user, at_ms, false)
end)

-- FLASH.INFO sale
-- core/src/cmd/info.rs: settings, open now, held carts, totals and one row per SKU
-- ([sku, loaded, available, held, pending, sold], ascending; a missing counter is 0), and
-- last the waiting room: nil without one, else its settings, the seed's commitment, the seed
-- from START on, shoppers waiting, admissions live and the counters.
return run(function()
    local args, sale_name = begin('FLASH.INFO')
    args:finish()

    -- A counter's column in a row, after the SKU.
    local column_of = {}
    for column, counter in ipairs(COUNTERS) do
        column_of[counter] = column
    end
    local function zeros()
        local row = {}
        for column = 1, #COUNTERS do
            row[column] = 0
        end
        return row
    end

    local at_ms = now_ms()
    local sale = require_sale(sale_name)
    local rows, skus = {}, {}
    local fields = call('HGETALL', STOCK_KEY)
    for i = 1, #fields, 2 do
        -- `<sku>:<counter>` split at the first separator (keys::parse_stock_field); a field
        -- that does not read so is not Flash's, and is skipped.
        local field = fields[i]
        local at = field:find(STOCK_FIELD_SEPARATOR, 1, true)
        local sku = at and stored_int(field:sub(1, at - 1))
        local column = at and column_of[field:sub(at + #STOCK_FIELD_SEPARATOR)]
        local value = stored_int(fields[i + 1])
        if sku and column and value then
            if rows[sku] == nil then
                rows[sku] = zeros()
                skus[#skus + 1] = sku
            end
            rows[sku][column] = value
        end
    end
    table.sort(skus)
    local total = zeros()
    local sku_rows = {}
    for _, sku in ipairs(skus) do
        local row = { sku }
        for column = 1, #COUNTERS do
            total[column] = total[column] + rows[sku][column]
            row[#row + 1] = rows[sku][column]
        end
        sku_rows[#sku_rows + 1] = row
    end
    -- info.rs queue_info. false is nil in the reply.
    local queue = false
    if has_queue(sale) then
        queue = {
            R.QUEUE_RATE, sale.queue_rate,
            R.QUEUE_CAP, sale.queue_cap,
            R.ADMIT_MS, sale.admit_ms,
            R.IDLE_MS, sale.idle_ms,
            R.SEED_SHA1, redis.sha1hex(sale.seed),
            -- Revealed from START on.
            R.SEED, at_ms >= sale.start_ms and sale.seed or false,
            R.LINE, call('ZCARD', LINE_KEY),
            R.ADMITTED_NOW, call('ZCARD', ADMITTED_KEY),
            R.ADMITTED, queue_counter(Q_ADMITTED),
            R.LAPSED, queue_counter(Q_LAPSED),
            R.ABANDONED, queue_counter(Q_ABANDONED),
        }
    end
    return {
        R.HOLD_MS, sale.hold_ms,
        R.LIMIT, sale.limit,
        R.START_MS, sale.start_ms,
        R.END_MS, sale.end_ms,
        R.RETAIN_MS, sale.retain_ms,
        R.OPEN, is_open(sale, at_ms) and 1 or 0,
        R.HELD_CARTS, stored_int(call('HGET', STOCK_KEY, HELD_CARTS_FIELD)) or 0,
        R.TOTAL, total,
        R.SKUS, sku_rows,
        R.QUEUE, queue,
    }
end)

-- FLASH.INFO sale
-- core/src/cmd/info.rs: settings, open now, held carts, totals and one row per SKU
-- ([sku, loaded, available, held, pending, sold], ascending; a missing counter is 0).
return run(function()
    local args, sale_name = begin('FLASH.INFO')
    args:finish()

    local at_ms = now_ms()
    local sale = require_sale(sale_name)
    local rows, skus = {}, {}
    local fields = call('HGETALL', K.stock)
    for i = 1, #fields, 2 do
        -- `<sku>:<counter>`; a field that does not read so is not Flash's, and is skipped.
        local sku_text, counter = fields[i]:match('^([^:]*):(.*)$')
        local sku = stored_int(sku_text)
        local column = COUNTER_COLUMN[counter]
        local value = stored_int(fields[i + 1])
        if sku and column and value then
            if rows[sku] == nil then
                rows[sku] = { 0, 0, 0, 0, 0 }
                skus[#skus + 1] = sku
            end
            rows[sku][column] = value
        end
    end
    table.sort(skus)
    local total = { 0, 0, 0, 0, 0 }
    local sku_rows = {}
    for _, sku in ipairs(skus) do
        local row = { sku }
        for column = 1, #COUNTERS do
            total[column] = total[column] + rows[sku][column]
            row[#row + 1] = rows[sku][column]
        end
        sku_rows[#sku_rows + 1] = row
    end
    return {
        'hold_ms', sale.hold_ms,
        'limit', sale.limit,
        'start_ms', sale.start_ms,
        'end_ms', sale.end_ms,
        'open', is_open(sale, at_ms) and 1 or 0,
        'held_carts', call('ZCARD', K.deadlines),
        'total', total,
        'skus', sku_rows,
    }
end)

-- FLASH.LOAD sale sku units [sku units ...]
-- core/src/cmd/load.rs: sets each SKU's available units, moving loaded by the difference so
-- that loaded = available + held + pending + sold keeps holding. Pairs apply in order.
return run(function()
    local args, sale_name = begin('FLASH.LOAD')
    local stock = {}
    repeat
        local sku = args:sku()
        local new_available = args:int('units', 0, MAX_UNITS)
        stock[#stock + 1] = { sku = sku, units = new_available }
    until args:remaining() == 0
    args:finish()

    require_sale(sale_name)
    guard({ 'stock' })
    for _, pair in ipairs(stock) do
        local before = units('available', pair.sku) or 0
        add_units('loaded', pair.sku, pair.units - before)
        set_units('available', pair.sku, pair.units)
        publish_available(pair.sku, pair.units)
    end
    return #stock
end)

//! The demo catalog: what an empty database gets on the first `flash up`, so the shop has
//! something to sell. Stock varies on purpose: a few products have one or two units, so a
//! handful of buyers sells them out and the UI shows it.

use anyhow::{Context, Result};
use tokio_postgres::Client;

/// Name, price in cents, units in stock.
pub const CATALOG: &[(&str, i64, i64)] = &[
    ("Aurora 27\" 4K Monitor", 32_900, 25),
    ("Nimbus Noise-Cancelling Headphones", 19_900, 40),
    ("Kestrel Mechanical Keyboard, Brown Switches", 8_900, 60),
    ("Vega Wireless Mouse", 2_900, 150),
    ("Atlas 65\" OLED TV", 149_900, 2),
    ("Orbit Smartwatch, Series 3", 24_900, 30),
    ("Pulse True Wireless Earbuds", 7_900, 120),
    ("Cinder 12\" Cast-Iron Skillet", 3_900, 80),
    ("Boreal Down Jacket", 17_900, 35),
    ("Tundra 40 L Hiking Backpack", 8_900, 45),
    ("Summit Trail Running Shoes", 11_900, 50),
    ("Lumen Smart LED Bulbs, 4-Pack", 3_400, 200),
    ("Harbor Dual-Boiler Espresso Machine", 44_900, 8),
    ("Drift Cold Brew Maker", 3_200, 90),
    ("Sable Leather Weekender Bag", 21_900, 12),
    ("Quill Fountain Pen, Fine Nib", 6_500, 70),
    ("Ember Ceramic Pour-Over Set", 4_800, 55),
    ("Polar Insulated Bottle, 750 ml", 2_900, 180),
    ("Zephyr Cordless Stick Vacuum", 27_900, 15),
    ("Halcyon Weighted Blanket, 7 kg", 12_900, 25),
    ("Nova Pocket Projector", 38_900, 1),
    ("Cobalt 11-in-1 USB-C Dock", 13_900, 40),
    ("Meridian 2 TB Portable SSD", 15_900, 60),
    ("Fjord Merino Wool Throw", 8_900, 30),
    ("Tempo Adjustable Dumbbells, Pair", 29_900, 10),
    ("Solstice Cork Yoga Mat", 5_900, 100),
    ("Relay Mesh Wi-Fi System, 3-Pack", 27_900, 20),
    ("Granite 8\" Chef's Knife", 9_900, 40),
    ("Cascade Packable Rain Shell", 14_900, 28),
    ("Linea Pen Drawing Tablet", 22_900, 14),
    ("Ripple Waterproof Bluetooth Speaker", 9_900, 75),
    ("Basalt 5.5 qt Enameled Dutch Oven", 17_900, 18),
    ("Midnight Sessions Vinyl Box Set, Numbered", 12_900, 2),
    ("Marlin Polarized Sunglasses", 13_900, 45),
    ("Aero Carbon Road Helmet", 18_900, 22),
    ("Tidewater Canvas Sneakers", 6_900, 90),
    ("Gamma Full-Frame Mirrorless Camera", 119_900, 3),
    ("Prism 50 mm f/1.8 Lens", 21_900, 6),
    ("Hearth Smart Thermostat", 19_900, 35),
    ("Sprout Indoor Herb Garden", 4_900, 65),
    ("Comet Signed Collector's Edition Sneakers", 34_900, 1),
];

/// Adds the catalog if `products` is empty; returns how many products were added (0 when
/// there were products already: a second run never duplicates the catalog).
pub async fn seed_if_empty(pg: &mut Client) -> Result<usize> {
    let tx = pg.transaction().await?;
    // Two stacks sharing one DATABASE_URL may start at once: one seeds, the other waits
    // and then finds products. Readers are not blocked.
    tx.batch_execute("LOCK TABLE products IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let existing: i64 = tx
        .query_one("SELECT count(*) FROM products", &[])
        .await?
        .get(0);
    if existing > 0 {
        return Ok(0);
    }
    let names: Vec<&str> = CATALOG.iter().map(|(name, _, _)| *name).collect();
    let prices: Vec<i64> = CATALOG.iter().map(|(_, price, _)| *price).collect();
    let stock: Vec<i64> = CATALOG.iter().map(|(_, _, units)| *units).collect();
    // Ids come from the identity column, so products added later by hand do not collide.
    tx.execute(
        "INSERT INTO products (name, price_cents, stock)
         SELECT n, p, s FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS c(n, p, s, i)
         ORDER BY i",
        &[&names, &prices, &stock],
    )
    .await
    .context("cannot add the demo catalog")?;
    tx.commit().await?;
    Ok(CATALOG.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_believable() {
        assert!((30..=60).contains(&CATALOG.len()));
        let mut names: Vec<&str> = CATALOG.iter().map(|(name, _, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len(), "names are unique");
        assert!(
            CATALOG
                .iter()
                .all(|(_, price, units)| *price > 0 && *units > 0)
        );
        let scarce = CATALOG.iter().filter(|(_, _, units)| *units <= 2).count();
        assert!(scarce >= 3, "a few products sell out quickly");
        assert!(CATALOG.iter().any(|(_, _, units)| *units >= 150));
    }
}

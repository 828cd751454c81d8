//! The summary's chart: events received and failed attempts per hour as bars, a PNG image
//! (plotters' bitmap backend, encoded with png), which ordinary mail clients show inline where
//! they would refuse SVG or scripts. The font is compiled in, so the chart looks the same on a
//! server without fonts.

use std::sync::OnceLock;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::figures::Hourly;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const WIDTH: u32 = 720;
const HEIGHT: u32 = 280;

fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the chart's font does not load"))
    }
}

/// The chart of `hourly` as PNG bytes.
pub fn png(hourly: &Hourly) -> anyhow::Result<Vec<u8>> {
    font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    draw(hourly, &mut pixels).map_err(|e| anyhow!("cannot draw the chart: {e}"))?;
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("cannot encode the chart")?;
        writer
            .write_image_data(&pixels)
            .context("cannot encode the chart")?;
    }
    Ok(out)
}

fn draw(hourly: &Hourly, pixels: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    let n = hourly.received.len().max(1) as i32;
    let top = hourly
        .received
        .iter()
        .chain(&hourly.failed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(4);
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .caption("Events per hour", ("sans-serif", 18))
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d(0..n, 0..top + top / 8 + 1)?;
    let hours = &hourly.hours;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(12)
        .x_label_formatter(&|h| {
            usize::try_from(*h)
                .ok()
                .and_then(|h| hours.get(h))
                .cloned()
                .unwrap_or_default()
        })
        .label_style(("sans-serif", 12))
        .draw()?;
    let received = RGBColor(52, 101, 164);
    let failed = RGBColor(204, 0, 0);
    chart
        .draw_series(hourly.received.iter().enumerate().map(|(i, &v)| {
            let i = i as i32;
            Rectangle::new([(i, 0), (i + 1, v)], received.mix(0.7).filled())
        }))?
        .label("received")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], received.filled()));
    chart
        .draw_series(hourly.failed.iter().enumerate().map(|(i, &v)| {
            let i = i as i32;
            Rectangle::new([(i, 0), (i + 1, v)], failed.mix(0.8).filled())
        }))?
        .label("failed attempts")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], failed.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_a_png_of_its_size() {
        let hourly = Hourly {
            hours: (0..24).map(|h| format!("{h:02}")).collect(),
            received: (0..24).map(|h| h * 3).collect(),
            failed: (0..24).map(|h| h % 5).collect(),
        };
        let bytes = png(&hourly).expect("a chart");
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let reader = decoder.read_info().expect("a PNG");
        assert_eq!((reader.info().width, reader.info().height), (WIDTH, HEIGHT));
        // Not blank: the bars are there in their colours.
        let empty = Hourly {
            hours: hourly.hours.clone(),
            received: vec![0; 24],
            failed: vec![0; 24],
        };
        assert_ne!(bytes, png(&empty).expect("an empty chart"));
    }
}

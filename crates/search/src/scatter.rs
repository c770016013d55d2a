//! A plain scatter of paired figures as SVG (plotters), for benchmarks that compare two
//! judges of the same candidates, e.g. inherited vs stand-alone accuracy (issue 14's
//! ranking benchmark).

use plotters::prelude::*;

use crate::SearchError;

/// What a pairs scatter shows: its caption and axis descriptions (with units and
/// sources, e.g. `inherited validation top-1 % (host)`).
#[derive(Debug, Clone, Copy)]
pub struct Axes<'a> {
    /// The caption above the plot.
    pub caption: &'a str,
    /// The x axis description.
    pub x: &'a str,
    /// The y axis description.
    pub y: &'a str,
}

/// `points` (x, y) as an 820 x 560 SVG, one filled circle each, the axes spanning the
/// points with a 5% margin (a unit margin when all share a value).
///
/// Errors: [`SearchError::Report`] for no points or when plotting fails.
pub fn pairs_svg(points: &[(f64, f64)], axes: Axes) -> Result<String, SearchError> {
    if points.is_empty() {
        return Err(SearchError::Report("scatter: no points".into()));
    }
    let span = |v: Vec<f64>| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
        (lo - pad)..(hi + pad)
    };
    let xs = span(points.iter().map(|p| p.0).collect());
    let ys = span(points.iter().map(|p| p.1).collect());
    let err = |e: &dyn std::fmt::Display| SearchError::Report(format!("scatter: {e}"));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (820, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .caption(axes.caption, ("sans-serif", 17))
            .build_cartesian_2d(xs, ys)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 5, BLUE.filled())))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_a_circle_and_no_pairs_is_an_error() {
        let axes = Axes {
            caption: "c",
            x: "inherited %",
            y: "stand-alone %",
        };
        let svg = pairs_svg(&[(70.0, 97.5), (72.5, 98.0), (65.0, 97.0)], axes).unwrap();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(svg.contains("stand-alone %"));
        // one repeated point still spans an axis
        assert!(pairs_svg(&[(1.0, 1.0)], axes).is_ok());
        assert!(pairs_svg(&[], axes).is_err());
    }
}

//! NSGA-II ranking: fast non-dominated sorting and crowding distance, as
//! defined by Deb et al. 2002 ("A fast and elitist multiobjective genetic
//! algorithm: NSGA-II").
//!
//! Points are vectors of objective values (any units, one per objective, in
//! the same order in every point) with one [`Direction`] per objective.

/// Whether an objective is to be made small or large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smaller is better (latency, size, memory).
    Minimize,
    /// Larger is better (accuracy).
    Maximize,
}

/// `a` is at least as good as `b` in every objective and better in one
/// (Pareto dominance). Equal points do not dominate each other.
pub fn dominates(a: &[f64], b: &[f64], directions: &[Direction]) -> bool {
    let mut better = false;
    for ((x, y), d) in a.iter().zip(b).zip(directions) {
        let (x, y) = match d {
            Direction::Minimize => (*x, *y),
            Direction::Maximize => (-*x, -*y),
        };
        if x > y {
            return false;
        }
        if x < y {
            better = true;
        }
    }
    better
}

/// Fronts of indices into `points`: front 0 is non-dominated, front 1 is
/// non-dominated once front 0 is removed, and so on (Deb et al. 2002's fast
/// non-dominated sort, O(M N^2) for N points and M objectives). With finite
/// values every index appears in exactly one front.
pub fn non_dominated_sort(points: &[Vec<f64>], directions: &[Direction]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by_me: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut domination_count = vec![0usize; n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(&points[i], &points[j], directions) {
                dominated_by_me[i].push(j);
            } else if i != j && dominates(&points[j], &points[i], directions) {
                domination_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| domination_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated_by_me[i] {
                domination_count[j] -= 1;
                if domination_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each member of `front` (same order): the sum over
/// objectives of the normalised gap between its neighbours; the extremes of
/// every objective get infinity so they are always kept, and so does every
/// member of a front of one or two (Deb et al. 2002).
pub fn crowding_distance(front: &[usize], points: &[Vec<f64>]) -> Vec<f64> {
    let m = front.len();
    let mut distance = vec![0.0; m];
    if m <= 2 {
        return vec![f64::INFINITY; m];
    }
    let objectives = points[front[0]].len();
    // `k` is the objective axis, indexing every member's point.
    #[allow(clippy::needless_range_loop)]
    for k in 0..objectives {
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| points[front[a]][k].total_cmp(&points[front[b]][k]));
        let lo = points[front[order[0]]][k];
        let hi = points[front[order[m - 1]]][k];
        distance[order[0]] = f64::INFINITY;
        distance[order[m - 1]] = f64::INFINITY;
        let span = hi - lo;
        if span <= 0.0 {
            continue;
        }
        for w in 1..m - 1 {
            let gap = points[front[order[w + 1]]][k] - points[front[order[w - 1]]][k];
            distance[order[w]] += gap / span;
        }
    }
    distance
}

/// All indices ordered by (front rank, then larger crowding distance first):
/// NSGA-II's crowded-comparison order.
pub fn crowded_order(points: &[Vec<f64>], directions: &[Direction]) -> Vec<usize> {
    let mut out = Vec::with_capacity(points.len());
    for front in non_dominated_sort(points, directions) {
        let d = crowding_distance(&front, points);
        let mut members: Vec<(usize, f64)> = front.into_iter().zip(d).collect();
        members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.extend(members.into_iter().map(|(i, _)| i));
    }
    out
}

/// The hypervolume of two-objective `points` (Zitzler & Thiele 1998): the
/// area, in the product of the objectives' units, that the points dominate
/// and that dominates `reference` (one value per objective, as bad as any
/// point of interest: accuracy 0 and the latency limit, say). Points that do
/// not dominate `reference` add nothing; an empty set has 0. The points are
/// swept in order of the first objective, best first, O(N log N).
pub fn hypervolume_2d(points: &[Vec<f64>], directions: [Direction; 2], reference: [f64; 2]) -> f64 {
    // Oriented so that larger is better in both.
    let orient = |v: f64, d: Direction| match d {
        Direction::Maximize => v,
        Direction::Minimize => -v,
    };
    let r = [
        orient(reference[0], directions[0]),
        orient(reference[1], directions[1]),
    ];
    let mut p: Vec<[f64; 2]> = points
        .iter()
        .filter(|v| v.len() >= 2)
        .map(|v| [orient(v[0], directions[0]), orient(v[1], directions[1])])
        .filter(|v| v[0] > r[0] && v[1] > r[1])
        .collect();
    p.sort_by(|a, b| b[0].total_cmp(&a[0]).then(b[1].total_cmp(&a[1])));
    let mut area = 0.0;
    let mut top = r[1];
    for v in p {
        if v[1] > top {
            area += (v[0] - r[0]) * (v[1] - top);
            top = v[1];
        }
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    // (accuracy max, latency min)
    const DIRS: [Direction; 2] = [Maximize, Minimize];

    fn pts(v: &[(f64, f64)]) -> Vec<Vec<f64>> {
        v.iter().map(|(a, l)| vec![*a, *l]).collect()
    }

    #[test]
    fn domination_respects_directions() {
        assert!(dominates(&[0.9, 10.0], &[0.8, 20.0], &DIRS));
        assert!(dominates(&[0.9, 10.0], &[0.9, 20.0], &DIRS));
        assert!(!dominates(&[0.9, 10.0], &[0.9, 10.0], &DIRS));
        assert!(!dominates(&[0.9, 30.0], &[0.8, 20.0], &DIRS));
    }

    #[test]
    fn sorts_hand_made_points_into_fronts() {
        let p = pts(&[
            (0.90, 30.0), // 0: front 0 (most accurate)
            (0.80, 10.0), // 1: front 0 (fastest)
            (0.85, 20.0), // 2: front 0 (between)
            (0.80, 25.0), // 3: dominated by 2 -> front 1
            (0.70, 40.0), // 4: dominated by 3 -> front 2
            (0.85, 20.0), // 5: equal to 2, not dominated -> front 0
        ]);
        let fronts = non_dominated_sort(&p, &DIRS);
        assert_eq!(fronts, vec![vec![0, 1, 2, 5], vec![3], vec![4]]);
    }

    #[test]
    fn crowding_keeps_extremes_and_prefers_lonely_points() {
        // One front along a line; point 2 sits in a wide gap, point 1 is crowded.
        let p = pts(&[(0.70, 10.0), (0.71, 11.0), (0.80, 20.0), (0.90, 30.0)]);
        let front = vec![0, 1, 2, 3];
        let d = crowding_distance(&front, &p);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        assert!(d[2] > d[1], "{d:?}");
        let order = crowded_order(&p, &DIRS);
        assert_eq!(&order[2..], &[2, 1]);
    }

    #[test]
    fn hypervolume_of_hand_made_fronts() {
        // (accuracy up, latency down), reference (0, 10).
        let dirs = [Maximize, Minimize];
        let p = pts(&[(0.5, 2.0), (0.8, 6.0), (0.6, 7.0), (0.9, 11.0)]);
        // 0.5 x 8 + (0.8 - 0.5) x 4 = 5.2; (0.6, 7) is dominated, (0.9, 11) beyond the reference.
        assert!((hypervolume_2d(&p, dirs, [0.0, 10.0]) - 5.2).abs() < 1e-12);
        assert_eq!(hypervolume_2d(&[], dirs, [0.0, 10.0]), 0.0);
    }
}

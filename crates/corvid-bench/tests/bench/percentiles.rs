//! Percentiles match numpy's linear interpolation; summaries and Poisson arrivals.

use corvid_bench::serve::{arrival_offsets, RequestRate};
use corvid_bench::stats::{percentile, std_dev, Summary};

#[test]
fn percentile_interpolates_like_numpy() {
    let v = [1.0, 2.0, 3.0, 4.0];
    // numpy.percentile([1,2,3,4], [0,50,90,99,100]) = 1, 2.5, 3.7, 3.97, 4
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&v, 50.0), Some(2.5));
    assert!((percentile(&v, 90.0).unwrap() - 3.7).abs() < 1e-12);
    assert!((percentile(&v, 99.0).unwrap() - 3.97).abs() < 1e-12);
    assert_eq!(percentile(&v, 100.0), Some(4.0));
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[5.0], 99.0), Some(5.0));
    // Order and NaNs do not matter.
    assert_eq!(percentile(&[4.0, f64::NAN, 1.0, 3.0, 2.0], 50.0), Some(2.5));
}

#[test]
fn summary_of_1_to_100() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    let s = Summary::from_values(&v);
    assert_eq!(s.count, 100);
    assert!((s.mean - 50.5).abs() < 1e-12);
    assert!((s.p50 - 50.5).abs() < 1e-12);
    assert!((s.p90 - 90.1).abs() < 1e-9);
    assert!((s.p99 - 99.01).abs() < 1e-9);
    assert_eq!(s.max, 100.0);
    let ms = Summary::from_seconds(&[0.001, 0.003]);
    assert!((ms.mean - 2.0).abs() < 1e-12);
    assert_eq!(Summary::from_values(&[]), Summary::default());
    assert!((std_dev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138089935).abs() < 1e-6);
}

#[test]
fn poisson_arrivals_are_seeded_with_the_right_mean() {
    let a = arrival_offsets(RequestRate::PerSecond(4.0), 4000, 1);
    assert_eq!(a, arrival_offsets(RequestRate::PerSecond(4.0), 4000, 1));
    assert_ne!(a, arrival_offsets(RequestRate::PerSecond(4.0), 4000, 2));
    assert_eq!(a[0], 0.0);
    assert!(a.windows(2).all(|w| w[1] >= w[0]));
    let mean_gap = a[a.len() - 1] / (a.len() - 1) as f64;
    assert!((mean_gap - 0.25).abs() < 0.02, "mean gap {mean_gap}");
    assert!(arrival_offsets(RequestRate::Infinite, 5, 1)
        .iter()
        .all(|&t| t == 0.0));
    assert_eq!("inf".parse::<RequestRate>(), Ok(RequestRate::Infinite));
    assert_eq!(
        "2.5".parse::<RequestRate>(),
        Ok(RequestRate::PerSecond(2.5))
    );
    assert!("0".parse::<RequestRate>().is_err());
}

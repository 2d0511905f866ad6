//! Column alignment as Go's `text/tabwriter` does it for Docker's tables.
//!
//! Text is split into lines and each line into tab-terminated cells. A cell that ends in a tab is padded
//! to its column's width (`max(widest cell + padding, min_width)`); the last cell of a line is written
//! as is. Columns are measured over runs of consecutive lines that have that cell, as tabwriter does.

/// Aligns tab-separated text. Docker's tables use `align(text, 10, 3)`; `docker version` uses `(20, 1)`.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let ends_with_newline = text.ends_with('\n');
    let lines: Vec<Vec<&str>> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|line| line.split('\t').collect())
        .collect();
    // widths[line][col] for every tab-terminated cell.
    let mut widths: Vec<Vec<usize>> = lines
        .iter()
        .map(|cells| vec![0; cells.len().saturating_sub(1)])
        .collect();
    let max_cols = widths.iter().map(Vec::len).max().unwrap_or(0);
    for col in 0..max_cols {
        let mut start = 0;
        while start < lines.len() {
            if widths[start].len() <= col {
                start += 1;
                continue;
            }
            let mut end = start;
            let mut width = min_width;
            while end < lines.len() && widths[end].len() > col {
                width = width.max(display_width(lines[end][col]) + padding);
                end += 1;
            }
            for row in widths.iter_mut().take(end).skip(start) {
                row[col] = width;
            }
            start = end;
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (i, cells) in lines.iter().enumerate() {
        let last = cells.len() - 1;
        for (col, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if col < last {
                let pad = widths[i][col].saturating_sub(display_width(cell));
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i + 1 < lines.len() || ends_with_newline {
            out.push('\n');
        }
    }
    out
}

fn display_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn docker_images_table_pads_columns_to_widest_plus_three_with_min_ten() {
        let text = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\n\
                    anchor/multilayer\t1\tb1072d5798ac\t7 minutes ago\t2.12MB\n\
                    busybox\tlatest\t5bc555f7f779\t8 minutes ago\t1.99MB\n";
        let expected = "REPOSITORY          TAG       IMAGE ID       CREATED         SIZE\n\
                        anchor/multilayer   1         b1072d5798ac   7 minutes ago   2.12MB\n\
                        busybox             latest    5bc555f7f779   8 minutes ago   1.99MB\n";
        assert_eq!(align(text, 10, 3), expected);
    }

    #[test]
    fn empty_last_cell_keeps_padding_of_the_cell_before_it() {
        let text = "SIZE\tCOMMENT\n0B\t\n";
        assert_eq!(align(text, 10, 3), "SIZE      COMMENT\n0B        \n");
    }

    #[test]
    fn lines_without_tabs_split_column_blocks() {
        let text = "A:\n x:\t1\nB:\n longer label:\t2\n";
        assert_eq!(align(text, 0, 1), "A:\n x: 1\nB:\n longer label: 2\n");
    }
}

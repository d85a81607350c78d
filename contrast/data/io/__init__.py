"""Reading sources into entries: file formats (extended XYZ, CIF, anything ASE reads, CSV, CGCNN folders),
compressed and streamed reading, and the bundled generated sources."""

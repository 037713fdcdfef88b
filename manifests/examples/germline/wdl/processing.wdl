version 1.0

# Data processing, after GATK4's data-processing workflow: unmapped BAM from FASTQ, alignment
# with bwa mem, merge with the unmapped BAM, duplicates marked, sorted and indexed. Tools from
# Debian (picard-tools, bwa, samtools); picard is called as `java -jar` (Debian's wrapper
# splits arguments on spaces).

workflow data_processing {
  input {
    File reference
    File reads_1
    File reads_2
    String sample = "sample1"
  }
  call index_reference { input: reference = reference }
  call fastq_to_unmapped_bam { input: reads_1 = reads_1, reads_2 = reads_2, sample = sample }
  call align {
    input: unmapped_bam = fastq_to_unmapped_bam.bam, reference_files = index_reference.files
  }
  call merge_bam_alignment {
    input: unmapped_bam = fastq_to_unmapped_bam.bam, aligned_bam = align.bam,
      reference_files = index_reference.files
  }
  call mark_duplicates { input: bam = merge_bam_alignment.bam }
  call sort_and_index { input: bam = mark_duplicates.marked_bam, sample = sample }
  output {
    File analysis_ready_bam = sort_and_index.sorted_bam
    File analysis_ready_bai = sort_and_index.sorted_bai
    File duplication_metrics = mark_duplicates.metrics
  }
}

task index_reference {
  input { File reference }
  command <<<
    set -euo pipefail
    cp ~{reference} reference.fa
    samtools faidx reference.fa
    bwa index reference.fa 2> bwa-index.log
    samtools dict reference.fa -o reference.dict
  >>>
  # one glob: the files stay side by side wherever a later task sees them
  output { Array[File] files = glob("reference.*") }
}

task fastq_to_unmapped_bam {
  input { File reads_1  File reads_2  String sample }
  command <<<
    set -euo pipefail
    java -Xmx1g -jar /usr/share/java/picard.jar FastqToSam -F1 ~{reads_1} -F2 ~{reads_2} \
      -O unmapped.bam -SM ~{sample} -RG rg1 -PL ILLUMINA -LB lib1 \
      -QUALITY_FORMAT Standard -QUIET true
  >>>
  output { File bam = "unmapped.bam" }
}

task align {
  input { File unmapped_bam  Array[File] reference_files }
  command <<<
    set -euo pipefail
    ref=$(dirname ~{reference_files[0]})/reference.fa
    java -Xmx1g -jar /usr/share/java/picard.jar SamToFastq -I ~{unmapped_bam} \
      -FASTQ /dev/stdout -INTERLEAVE true -QUIET true \
      | bwa mem -t 2 -p "$ref" /dev/stdin 2> bwa.log \
      | samtools view -b -o aligned.bam -
  >>>
  output { File bam = "aligned.bam" }
  runtime { cpu: 2 }
}

task merge_bam_alignment {
  input { File unmapped_bam  File aligned_bam  Array[File] reference_files }
  command <<<
    set -euo pipefail
    ref=$(dirname ~{reference_files[0]})/reference.fa
    java -Xmx1g -jar /usr/share/java/picard.jar MergeBamAlignment -ALIGNED ~{aligned_bam} \
      -UNMAPPED ~{unmapped_bam} -O merged.bam -R "$ref" -SORT_ORDER coordinate -QUIET true
  >>>
  output { File bam = "merged.bam" }
}

task mark_duplicates {
  input { File bam }
  command <<<
    set -euo pipefail
    java -Xmx1g -jar /usr/share/java/picard.jar MarkDuplicates -I ~{bam} -O marked.bam \
      -M duplication_metrics.txt -QUIET true
  >>>
  output { File marked_bam = "marked.bam"  File metrics = "duplication_metrics.txt" }
}

task sort_and_index {
  input { File bam  String sample }
  command <<<
    set -euo pipefail
    java -Xmx1g -jar /usr/share/java/picard.jar SortSam -I ~{bam} -O ~{sample}.bam \
      -SORT_ORDER coordinate -QUIET true
    samtools index ~{sample}.bam
  >>>
  output { File sorted_bam = "~{sample}.bam"  File sorted_bai = "~{sample}.bam.bai" }
}

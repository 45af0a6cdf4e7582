"""Plain re-implementations of the Text4Seg evaluation scripts' arithmetic (mc-lan/Text4Seg,
``llava/eval/``), written from their published logic with the same torch / numpy operations, as the
oracle for the ``policy="text4seg"`` accumulators.  Inputs are in-memory masks instead of PNG folders:
``images`` is a list of images, each a list of (pred, gt) pairs (0/1 uint8 arrays), in folder order.
"""

from __future__ import annotations

import numpy as np
import torch


class AverageMeter:
    """utils.AverageMeter with Summary.SUM: only sum/count/avg matter."""

    def __init__(self):
        self.sum = 0
        self.count = 0
        self.avg = 0

    def update(self, val, n=1):
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def intersection_and_union_gpu(output, target, k, ignore_index=255):
    """utils.intersectionAndUnionGPU."""
    assert output.dim() in [1, 2, 3]
    assert output.shape == target.shape
    output = output.view(-1)
    target = target.view(-1)
    output[target == ignore_index] = ignore_index
    intersection = output[output == target]
    area_intersection = torch.histc(intersection, bins=k, min=0, max=k - 1)
    area_output = torch.histc(output, bins=k, min=0, max=k - 1)
    area_target = torch.histc(target, bins=k, min=0, max=k - 1)
    area_union = area_output + area_target - area_intersection
    return area_intersection, area_union, area_target


def eval_refer_seg(images):
    """eval_refer_seg.py's mllm_mask loop: returns (ciou, giou) as numpy float32."""
    intersection_meter, union_meter, acc_iou_meter = AverageMeter(), AverageMeter(), AverageMeter()
    for samples in images:
        num = len(samples)
        intersection, union, acc_iou = 0.0, 0.0, 0.0
        for pred, gt in samples:
            pred_mask = torch.from_numpy(np.asarray(pred, dtype=np.uint8) * 255 // 255).to(dtype=torch.float32)
            gt_mask = torch.from_numpy(np.asarray(gt, dtype=np.uint8) * 255 // 255).to(dtype=torch.float32)
            intersection_i, union_i, _ = intersection_and_union_gpu(
                pred_mask.contiguous().clone(), gt_mask.contiguous(), 2, ignore_index=255
            )
            intersection += intersection_i
            union += union_i
            acc_iou += intersection_i / (union_i + 1e-5)
            acc_iou[union_i == 0] += 1.0
        intersection, union = intersection.cpu().numpy(), union.cpu().numpy()
        acc_iou = acc_iou.cpu().numpy() / num
        intersection_meter.update(intersection)
        union_meter.update(union)
        acc_iou_meter.update(acc_iou, n=num)
    iou_class = intersection_meter.sum / (union_meter.sum + 1e-10)
    return iou_class[1], acc_iou_meter.avg[1]


def masks_to_boxes(masks):
    """utils.masks_to_boxes."""
    if masks.numel() == 0:
        return torch.zeros((0, 4), device=masks.device)
    h, w = masks.shape[-2:]
    y = torch.arange(0, h, dtype=torch.float)
    x = torch.arange(0, w, dtype=torch.float)
    y, x = torch.meshgrid(y, x, indexing="ij")
    x_mask = masks * x.unsqueeze(0)
    x_max = x_mask.flatten(1).max(-1)[0]
    x_min = x_mask.masked_fill(~(masks.bool()), 1e8).flatten(1).min(-1)[0]
    y_mask = masks * y.unsqueeze(0)
    y_max = y_mask.flatten(1).max(-1)[0]
    y_min = y_mask.masked_fill(~(masks.bool()), 1e8).flatten(1).min(-1)[0]
    return torch.stack([x_min, y_min, x_max, y_max], 1)


def box_area(boxes):
    """torchvision.ops.boxes.box_area."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    """utils.box_iou."""
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union, union


def eval_refer_comprehen(images):
    """eval_refer_comprehen.py's mllm accuracy (a fraction, not percent), and the per-sample hits."""
    all_samples = correct = 0
    hits = []
    for samples in images:
        for pred, gt in samples:
            all_samples += 1
            pred_mask = torch.from_numpy(np.asarray(pred, dtype=np.uint8)).to(dtype=torch.float32)
            gt_mask = torch.from_numpy(np.asarray(gt, dtype=np.uint8)).to(dtype=torch.float32)
            pred_iou, _ = box_iou(masks_to_boxes(pred_mask.unsqueeze(0)), masks_to_boxes(gt_mask.unsqueeze(0)))
            hit = bool(pred_iou > 0.5)
            correct += hit
            hits.append(hit)
    return correct / all_samples, hits


def eval_semantic_seg(pairs, k_classes):
    """eval_semantic_seg.py's llava_mask mIoU over (pred, gt) label maps (uint8), as numpy float32."""
    intersection_meter, union_meter = AverageMeter(), AverageMeter()
    for pred, gt in pairs:
        pred_mask = torch.from_numpy(np.asarray(pred, dtype=np.uint8)).to(dtype=torch.float32)
        gt_mask = torch.from_numpy(np.asarray(gt, dtype=np.uint8)).to(dtype=torch.float32)
        intersection, union, _ = intersection_and_union_gpu(
            pred_mask.contiguous().clone(), gt_mask.contiguous(), k_classes, ignore_index=0
        )
        intersection_meter.update(intersection.cpu().numpy())
        union_meter.update(union.cpu().numpy())
    iou_class = intersection_meter.sum / (union_meter.sum + 1e-10)
    return np.mean(iou_class)
